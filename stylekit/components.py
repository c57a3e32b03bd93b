"""What every registered component shares: a name, a kind and a pydantic options model.

A component is a class. Its ``name`` is what recipes and the CLI use, its
``Options`` model validates the recipe block that configures it, and its
docstring's first line is its summary in ``stylekit plugins``. Options are validated
once (:func:`validate_options`) and the typed model is what the component is built with.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import OptionsError


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


def validate_options(cls: type[Component], options: dict[str, Any] | ComponentOptions | None,
                     where: str = "") -> ComponentOptions:
    """``options`` as ``cls.Options`` (as given when already one); a :class:`ConfigError` naming ``where``, each
    bad key and the allowed keys otherwise."""
    try:
        return cls.parse_options(options)
    except ValidationError as exc:
        problems = format_validation_error(exc, where, cls.Options)
        what = f"{where}: invalid" if where else "invalid"
        raise OptionsError(f"{what} options for {cls.kind} {cls.name}:\n{problems}", problems) from None


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str] | None:
    for part in loc:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return sorted(model.model_fields)


#: problems listed per validation error (a file that is not a recipe at all has one per key)
MAX_LISTED_PROBLEMS = 12


def format_validation_error(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """One indented line per problem, ``prefix.key.path: what is wrong`` (an unknown key lists ``model``'s keys)."""
    lines = []
    errors = exc.errors()
    for err in errors[:MAX_LISTED_PROBLEMS]:
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in ((prefix,) if prefix else ()) + loc) or "(recipe)"
        message = err["msg"]
        if err["type"] == "extra_forbidden" and model is not None:
            allowed = _allowed_keys(model, loc[:-1])
            if allowed:
                message = f"unknown key; allowed keys: {', '.join(allowed)}"
        elif err["type"] == "missing":
            message = "required key is missing"
        if "input" in err and err["type"] not in ("missing", "extra_forbidden") and not isinstance(err["input"], dict):
            message += f" (got {err['input']!r:.100})"
        lines.append(f"  {path[:100]}: {message}")
    if len(errors) > MAX_LISTED_PROBLEMS:
        lines.append(f"  … and {len(errors) - MAX_LISTED_PROBLEMS} more")
    return "\n".join(lines)
