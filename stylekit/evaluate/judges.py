"""Independent judges: which pretrained weights the evaluated models were trained through, which of them the
evaluation's own networks share, and a default depth judge chosen to share none.

A model's recipe (its checkpoint's meta.json, else its run's config.yaml) names its backbone and its loss
terms, each term names its networks (``networks()``), and each network declares the weights it holds
(:meth:`~stylekit.weights.FrozenNetwork.weights_used`). A judge holding any of those weights is not
independent of the model: a depth network on the model's own encoder scores ŷ partly by the very features
the model was trained to match. Nothing here builds a network or reads a weights file's tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import ConfigError
from ..features import NetworkSpec
from ..weights import missing_files

#: The depth judges ``stylekit evaluate`` tries by default, best first: the first whose weights are all on this
#: machine and shared with none of the evaluated models' networks judges depth. Reorder or extend freely (the
#: evaluate command's --depth-network help, README and docs/metrics.md name this order).
DEPTH_JUDGES: tuple[NetworkSpec, ...] = (
    NetworkSpec.of("depth", "effnet_depth_lite", {"encoder": "lite0"}),
    NetworkSpec.of("depth", "effnet_depth_lite", {"encoder": "lite2"}),
    NetworkSpec.of("depth", "hed_depth_lite"),
)


@dataclass
class Trained:
    """The pretrained weights one evaluated model was trained through: identity → the networks holding them."""

    source: str
    weights: dict[str, list[str]] = field(default_factory=dict)
    #: the identities of its perception backbone alone (what its content and style terms looked through)
    backbone: set[str] = field(default_factory=set)
    backbone_label: str = ""
    #: what could not be told (no recipe; a term or network whose plugin is not loaded)
    unknown: list[str] = field(default_factory=list)


def weights_of(spec: NetworkSpec, registry) -> dict[str, Any]:
    """The weights a network spec holds (identity → where found), from its class and options alone."""
    cls = registry.get(spec.kind, spec.name)
    used = getattr(cls, "weights_used", None)
    if used is None:
        raise ConfigError(f"{spec.kind} {spec.name!r} does not declare its weights (no weights_used())")
    return used(spec.options)


def trained_through(source: str, recipe: dict | None, registry) -> Trained:
    """What a model with this recipe was trained through; unreadable parts go to ``unknown``, never an error."""
    trained = Trained(source)
    if recipe is None:
        trained.unknown.append("no recipe (a folder of images, or a checkpoint without meta.json or config.yaml)")
        return trained
    networks: list[tuple[str, NetworkSpec]] = []
    backbone = recipe.get("backbone") or {}
    if backbone.get("name"):
        spec = NetworkSpec.of("backbone", backbone["name"], backbone.get("options") or {})
        networks.append((f"backbone {spec.label}", spec))
        trained.backbone_label = spec.label
    for key, raw in sorted((recipe.get("losses") or {}).items()):
        raw = dict(raw or {})
        name = raw.pop("term", key)
        try:
            term = registry.build("loss", name, raw, where=f"losses.{key}", key=key)
        except Exception as exc:  # noqa: BLE001 - an unknown term or options from another version: say so
            trained.unknown.append(f"term {key} ({type(exc).__name__}: {str(exc).splitlines()[0]})")
            continue
        if term.weight > 0:
            networks += [(f"{key} term's {spec.label}", spec) for spec in term.networks()]
    for label, spec in networks:
        try:
            identities = set(weights_of(spec, registry))
        except Exception as exc:  # noqa: BLE001
            trained.unknown.append(f"{label} ({type(exc).__name__}: {str(exc).splitlines()[0]})")
            continue
        for identity in identities:
            trained.weights.setdefault(identity, []).append(label)
        if label.startswith("backbone "):
            trained.backbone = identities
    return trained


def shared_with(identities: Iterable[str], trained: Iterable[Trained]) -> dict[str, dict[str, list[str]]]:
    """identity → {model: its networks holding it}, for the identities some evaluated model holds."""
    shared: dict[str, dict[str, list[str]]] = {}
    for identity in sorted(set(identities)):
        for model in trained:
            if identity in model.weights:
                shared.setdefault(identity, {})[model.source] = model.weights[identity]
    return shared


def sharing_text(shared: dict[str, dict[str, list[str]]]) -> str:
    """'hed_bsds500 with base and cand (backbone hed_vgg16; depth term's hed_depth_lite)'; identities held by the
    same networks are named together."""
    by_holders: dict[tuple, list[str]] = {}
    for identity, models in shared.items():
        by_holders.setdefault(tuple((m, tuple(uses)) for m, uses in models.items()), []).append(identity)
    parts = []
    for holders, identities in by_holders.items():
        by_uses: dict[tuple[str, ...], list[str]] = {}
        for model, uses in holders:
            by_uses.setdefault(uses, []).append(model)
        whom = "; ".join(f"{_and(names)} ({'; '.join(uses)})" for uses, names in by_uses.items())
        parts.append(f"{_and(identities)} with {whom}")
    return ", and ".join(parts)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass
class DepthJudge:
    """The depth network that judges depth, and how independent it is of the evaluated models."""

    spec: NetworkSpec
    #: identity → {model: networks} it shares (empty: independent of every model whose recipe was read)
    shared: dict[str, dict[str, list[str]]]
    #: True when the user named it (--depth-network)
    chosen: bool = False
    #: the default candidates passed over, and why
    notes: list[str] = field(default_factory=list)


def choose_depth_judge(trained: list[Trained], registry,
                       candidates: Iterable[NetworkSpec] = DEPTH_JUDGES) -> DepthJudge:
    """The first candidate on this machine that shares no weights with any evaluated model; failing that, the
    one on this machine sharing the fewest (earlier candidates first). Nothing is downloaded or built."""
    notes: list[str] = []
    fallback: list[DepthJudge] = []
    missing_all: list[str] = []
    for spec in candidates:
        try:
            used = weights_of(spec, registry)
        except Exception as exc:  # noqa: BLE001 - e.g. a candidate from a plugin that is not installed
            notes.append(f"{spec.label}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        shared = shared_with(used, trained)
        missing = missing_files(used)
        if missing:
            notes.append(f"{spec.label}: not on this machine (needs {', '.join(missing)})")
            missing_all.append(f"{spec.label} needs {', '.join(missing)}")
        elif shared:
            notes.append(f"{spec.label}: shares {sharing_text(shared)}")
            fallback.append(DepthJudge(spec, shared))
        else:
            return DepthJudge(spec, {}, notes=notes)
    if fallback:
        best = min(fallback, key=lambda judge: len(judge.shared))
        best.notes = [note for note in notes if not note.startswith(f"{best.spec.label}: shares")]
        return best
    raise ConfigError("no depth judge is available on this machine: " + "; ".join(missing_all or notes)
                      + ". Put one of these files in the weights directory (--weights-dir or STYLEKIT_WEIGHTS_DIR), "
                        "or name a depth network with --depth-network NAME (--depth-option KEY=VALUE), e.g. "
                        "--depth-network torchscript --depth-option weights=/path/model.pt")


def header_lines(judge: DepthJudge | None, trained: list[Trained], metrics: Iterable, loss_backbone: NetworkSpec,
                 registry) -> list[tuple[bool, str]]:
    """The report's statement on independence: (is it a warning, sentence) per point, in plain words."""
    lines: list[tuple[bool, str]] = []
    metrics = list(metrics)
    how = " (chosen with --depth-network)" if judge is not None and judge.chosen else ""
    passed_over = f" Candidates passed over: {'; '.join(judge.notes)}." if judge is not None and judge.notes else ""
    if judge is None:
        pass
    elif judge.shared:
        no_better = "" if judge.chosen else " No default candidate is independent of these models."
        lines.append((True, f"Depth judge {judge.spec.label}{how} is NOT independent: it shares "
                            f"{sharing_text(judge.shared)}.{no_better}{passed_over}"))
    elif any(identity.startswith("file ") for identity in weights_of(judge.spec, registry)):
        lines.append((True, f"Depth judge {judge.spec.label}{how} shares no weights stylekit can name with the "
                            "evaluated models' networks, but it is a file whose origin stylekit cannot trace: "
                            f"if it was trained from one of their networks it is not independent.{passed_over}"))
    else:
        lines.append((False, f"Depth judge {judge.spec.label}{how} is independent: it shares no pretrained weights "
                             f"with the networks the evaluated models were trained through.{passed_over}"))
    for metric in metrics:
        if metric.name == "depth" or not metric.judge:
            continue
        used = metric.weights_used()
        if not used:
            continue
        shared = shared_with(used, trained)
        network = metric.columns[0].network or metric.name
        if shared:
            lines.append((True, f"Metric {metric.name} ({network}) is NOT independent: it shares "
                                f"{sharing_text(shared)}."))
        else:
            lines.append((False, f"Metric {metric.name} ({network}) shares no weights with training."))
    if any(not metric.judge for metric in metrics):
        loss = set(weights_of(loss_backbone, registry))
        others = [m for m in trained if m.backbone_label and m.backbone != loss]
        if others:
            lines.append((False, f"Content and style losses are measured through {loss_backbone.label}, not the loss "
                                 f"network of {_and([m.source for m in others])} ({others[0].backbone_label}): compare "
                                 "models with each other, not with training's logged values."))
    for model in trained:
        if model.unknown:
            lines.append((True, f"{model.source}: training networks not fully known ({'; '.join(model.unknown)}); "
                                "sharing with those is not checked."))
    return lines
