"""What every registered component shares: a name, a kind and a pydantic options model.

A component is a class. Its ``name`` is what recipes and the CLI use, its
``Options`` model validates the recipe block that configures it, and its
docstring's first line is its summary in ``stylekit plugins``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class ComponentOptions(BaseModel):
    """Base of every component's options: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Component:
    """Mixin for registrable classes (loss terms, backbones, …)."""

    kind: ClassVar[str] = "component"
    name: ClassVar[str] = ""
    Options: ClassVar[type[ComponentOptions]] = ComponentOptions

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def parse_options(cls, raw: dict[str, Any] | ComponentOptions | None) -> ComponentOptions:
        if isinstance(raw, cls.Options):
            return raw
        return cls.Options.model_validate(raw or {})
