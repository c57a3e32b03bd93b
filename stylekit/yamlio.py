"""YAML as stylekit reads what people and other machines give it: bounded documents (recipes, run folders'
config.yaml) and the values of ``KEY=VALUE`` options (``--set``, ``--option``, ``--depth-option``…).

:func:`parse_key_value` is the one reading of ``KEY=VALUE``: the value is YAML (numbers, booleans, lists), and
``1e-5`` is a number, as people mean it (YAML 1.1 reads it as a string).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import yaml

from .errors import ConfigError

#: YAML nodes after expanding aliases; a small file with nested aliases ("billion laughs") expands past it
MAX_YAML_NODES = 100_000
#: nesting depth of YAML collections
MAX_YAML_DEPTH = 64


def _expanded_size(root: yaml.Node, source: str) -> int:
    """Nodes in the document once every alias is expanded (computed without expanding anything).

    An alias is the same node object as its anchor, so the size of each node is computed once (post-order,
    iteratively, so deep nesting cannot exhaust Python's stack); a node that contains itself is an error.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{source}: YAML nested deeper than {MAX_YAML_DEPTH} levels; recipes are flat "
                              "mappings, so this is not a recipe")
        children = ([v for pair in node.value for v in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if children_done:
            on_path.discard(id(node))
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_YAML_NODES + 1)
            if sizes[id(node)] > MAX_YAML_NODES:
                raise ConfigError(f"{source}: YAML aliases expand to more than {MAX_YAML_NODES:,} values (an "
                                  "alias bomb?); write the values out, or use fewer nested aliases")
            continue
        if id(node) in on_path:
            raise ConfigError(f"{source}: a YAML anchor contains an alias to itself (&{node.anchor or '…'}); "
                              "recipes cannot be recursive")
        on_path.add(id(node))
        stack.append((node, depth, True))
        for child in children:
            if id(child) in on_path:
                raise ConfigError(f"{source}: a YAML anchor contains an alias to itself; recipes cannot be "
                                  "recursive")
            stack.append((child, depth + 1, False))
    return sizes[id(root)]


def safe_yaml_load(text: str, source: str) -> Any:
    """``yaml.safe_load`` with bounds: nesting depth, and the size after alias expansion.

    ``source`` (a file or option name) starts every error message.
    """
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # checks the characters already
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply to read") from None
    finally:
        if loader is not None:
            loader.dispose()


_KEY_VALUE = re.compile(r"^([A-Za-z_][\w\-]*(?:\.[A-Za-z_0-9][\w\-]*)*)=(.*)$", re.S)
_EXPONENT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


def parse_key_value(text: str, flag: str = "--set") -> tuple[list[str], Any]:
    """``a.b.c=value`` → (["a", "b", "c"], value read as YAML); an empty value is None. ``flag`` names the option
    in errors."""
    match = _KEY_VALUE.match(text.strip())
    if not match:
        raise ConfigError(f"{flag} {text!r}: expected KEY.PATH=VALUE, e.g. losses.style.weight=10")
    key, value_text = match.groups()
    value = safe_yaml_load(value_text, f"{flag} {key}: the value {value_text!r}") if value_text.strip() else None
    if isinstance(value, str) and _EXPONENT.fullmatch(value):
        value = float(value)
    return key.split("."), value


def options_from_texts(items: Iterable[str] | None, flag: str) -> dict[str, Any]:
    """A component's options from repeated ``KEY=VALUE`` (``--option``, ``--depth-option``…), read as
    :func:`parse_key_value` reads each."""
    options: dict[str, Any] = {}
    for item in items or []:
        keys, value = parse_key_value(item, flag)
        options[".".join(keys)] = value
    return options


def key_value_text(key: str, value: Any) -> str:
    """The ``KEY=VALUE`` text :func:`parse_key_value` reads back as (``key``, ``value``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip().removesuffix("...").strip()
    return f"{key}={text}"
