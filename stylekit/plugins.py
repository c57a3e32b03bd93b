"""Plugin discovery and the component registries (pluggy).

Load order: built-in plugins first (they use the same hooks as everyone else),
then the entry-point group ``stylekit`` from installed distributions, then the
files or modules given with ``--plugin`` / a recipe's ``plugins:`` list.
Component names must be unique per kind across all of them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Iterable, Sequence

import pluggy

from . import hookspecs
from .components import Component, ComponentOptions, validate_options
from .errors import PluginError, UnknownComponentError

ENTRY_POINT_GROUP = "stylekit"

#: Component kind → the hook that returns components of that kind.
KIND_HOOKS: dict[str, str] = {
    "loss": "stylekit_loss_terms",
    "backbone": "stylekit_backbones",
    "depth": "stylekit_depth_networks",
    "metric": "stylekit_metrics",
    "logger": "stylekit_loggers",
    "model": "stylekit_transformers",
}

BUILTIN_PLUGINS = (
    "stylekit.losses",
    "stylekit.backbones",
    "stylekit.depth",
    "stylekit.evaluate.builtin_metrics",
    "stylekit.loggers",
    "stylekit.models",
)


@dataclass(frozen=True)
class Registered:
    """One registry entry: the component class and where it came from."""

    kind: str
    name: str
    cls: type
    plugin: str
    source: str  # "built-in", "distribution NAME VERSION" or "file PATH"


@dataclass
class Registry:
    """Components by kind and name (think timm's model registry)."""

    entries: dict[str, dict[str, Registered]] = field(default_factory=dict)

    def add(self, entry: Registered) -> None:
        by_name = self.entries.setdefault(entry.kind, {})
        if entry.name in by_name:
            other = by_name[entry.name]
            raise PluginError(
                f"duplicate {entry.kind} name {entry.name!r}: registered by {other.plugin} ({other.source}) "
                f"and by {entry.plugin} ({entry.source}); rename one of them"
            )
        by_name[entry.name] = entry

    def names(self, kind: str, pattern: str = "*") -> list[str]:
        return sorted(n for n in self.entries.get(kind, {}) if fnmatch.fnmatch(n, pattern))

    def entry(self, kind: str, name: str, where: str = "") -> Registered:
        """The entry of ``name``; an :class:`UnknownComponentError` listing the known names (after ``where``:
        the recipe key or option the name came from) otherwise."""
        try:
            return self.entries[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "(none)"
            raise UnknownComponentError(f"{where + ': ' if where else ''}unknown {kind} {name!r}; known {kind} "
                                        f"names: {known}") from None

    def get(self, kind: str, name: str, where: str = "") -> type:
        return self.entry(kind, name, where).cls

    def options(self, kind: str, name: str, options: dict | ComponentOptions | None = None,
                where: str = "") -> ComponentOptions:
        """The options of component ``name`` validated into its ``Options`` model, once; errors name ``where``."""
        return validate_options(self.get(kind, name, where), options, where)

    def build(self, kind: str, name: str, options: dict | ComponentOptions | None = None, *, where: str = "",
              **extra) -> Component:
        """The one way a component is made from kind + name + options: the class the registry holds, called with
        its validated ``Options`` (a model already validated passes through untouched) and ``extra`` keywords
        (a loss term's ``key``, a depth network's shared ``encoder``)."""
        return self.get(kind, name, where)(self.options(kind, name, options, where), **extra)

    def __iter__(self):
        for kind in sorted(self.entries):
            for name in sorted(self.entries[kind]):
                yield self.entries[kind][name]


class PluginManager:
    """Loads plugins and builds the :class:`Registry` from their hooks."""

    def __init__(self, plugins: Sequence[str | os.PathLike] = (), *, entry_points: bool | None = None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.sources: dict[str, str] = {}
        #: entry points that failed to import: (name, message); reported, not fatal.
        self.failures: list[tuple[str, str]] = []
        for module_name in BUILTIN_PLUGINS:
            self._register(importlib.import_module(module_name), module_name, "built-in")
        if entry_points is None:
            entry_points = os.environ.get("STYLEKIT_DISABLE_ENTRY_POINTS", "") in ("", "0")
        if entry_points:
            self._load_entry_points()
        for spec in plugins:
            self.load(spec)
        self.pm.check_pending()
        self._registry: Registry | None = None

    # -- loading -------------------------------------------------------------
    def _register(self, plugin: object, name: str, source: str) -> None:
        if self.pm.is_registered(plugin) or self.pm.has_plugin(name):
            return
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name} ({source}) is invalid: {exc}") from exc
        self.sources[name] = source
        self._registry = None

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            source = f"distribution {dist.name} {dist.version}" if dist else "distribution"
            name = f"{dist.name if dist else 'entry-point'}:{ep.name}"
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not take the CLI down
                message = f"{type(exc).__name__}: {exc}"
                self.failures.append((name, message))
                warnings.warn(f"stylekit plugin {name} ({source}) failed to load and was skipped: {message}",
                              stacklevel=2)
                continue
            self._register(plugin, name, source)

    def load(self, spec: str | os.PathLike) -> ModuleType:
        """Load a plugin from a ``.py`` file or an importable module name (:func:`plugin_file` decides which)."""
        text = os.fspath(spec)
        path = plugin_file(text)
        if path is not None:
            module = _import_file(path)
            source = f"file {path.resolve()}"
            name = f"file:{path.resolve()}"
        else:
            try:
                module = importlib.import_module(text)
            except Exception as exc:
                raise PluginError(f"plugin module {text!r} failed to import: {type(exc).__name__}: {exc}") from exc
            source = f"module {text}"
            name = f"module:{text}"
        if not any(self.pm.parse_hookimpl_opts(module, attr) for attr in dir(module)):
            raise PluginError(
                f"plugin {text!r} defines no stylekit hooks; decorate e.g. `def stylekit_loss_terms()` "
                "with `@stylekit.hookimpl`"
            )
        self._register(module, name, source)
        self.pm.check_pending()
        return module

    # -- the registry --------------------------------------------------------
    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        registry = Registry()
        for kind, hook_name in KIND_HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            # Called one implementation at a time so each component is attributed
            # to its plugin; the registry itself is ordered by name, never by load order.
            for impl in caller.get_hookimpls():
                plugin_name = impl.plugin_name
                try:
                    classes = impl.function() or []
                except Exception as exc:
                    raise PluginError(f"plugin {plugin_name} raised in {hook_name}: {type(exc).__name__}: {exc}") from exc
                for cls in classes:
                    _validate_component(cls, kind, plugin_name)
                    registry.add(Registered(kind, cls.name, cls, plugin_name, self.sources.get(plugin_name, "?")))
        return registry


def plugin_file(spec: str | os.PathLike, base: Path | None = None) -> Path | None:
    """The file a plugin spec names, or None when it is a module name: the one rule for ``--plugin``, a recipe's
    ``plugins:`` and a run folder's. A spec is a file when it ends in ``.py``, holds a path separator, or names
    an existing path (relative to ``base``, a recipe's folder, when given); ``my_pkg.plugin`` is a module."""
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if text.endswith(".py") or "/" in text or os.sep in text or path.exists():
        return path
    return None


def _validate_component(cls: object, kind: str, plugin: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Component)):
        raise PluginError(f"plugin {plugin} returned {cls!r} from its {kind} hook; expected a stylekit component class")
    if cls.kind != kind:
        raise PluginError(f"plugin {plugin} returned {cls.__name__} (a {cls.kind}) from its {kind} hook")
    if not cls.name or not isinstance(cls.name, str):
        raise PluginError(f"{cls.__name__} from plugin {plugin} has no `name`")
    if not (isinstance(cls.Options, type) and issubclass(cls.Options, ComponentOptions)):
        raise PluginError(f"{cls.__name__}.Options from plugin {plugin} must subclass stylekit.ComponentOptions")


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise PluginError(f"plugin file {path} does not exist")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    module_name = f"stylekit_user_plugin_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin file {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise PluginError(f"plugin file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


_managers: dict[tuple[str, ...], PluginManager] = {}


def get_plugin_manager(plugins: Iterable[str | os.PathLike] = ()) -> PluginManager:
    """A cached manager with the built-ins, entry points and the given extra plugins."""
    key = tuple(os.fspath(p) for p in plugins)
    if key not in _managers:
        _managers[key] = PluginManager(key)
    return _managers[key]


def get_registry(plugins: Iterable[str | os.PathLike] = ()) -> Registry:
    return get_plugin_manager(plugins).registry
