"""Public helpers for testing stylekit and its plugins: everything runs in seconds on a CPU, offline.

- Data: :func:`make_images` (JPEG files), :func:`random_images` (a tensor batch), :func:`tiny_recipe`.
- Networks: :class:`TinyVGG` (backbone ``tiny_vgg``: VGG-16's layer names, a few channels, random
  weights) and :class:`TinyDepth` (depth network ``tiny_depth``). Both are registered when this
  module is loaded as a plugin: ``get_registry(["stylekit.testing"])`` or ``plugins: [stylekit.testing]``
  in a recipe.
- Contract checks: :func:`check_term`, :func:`check_backbone`, :func:`check_depth_network`,
  :func:`check_metric`, :func:`check_logger` raise ``AssertionError`` with a specific message when a
  component breaks the contract its kind promises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from pydantic import BaseModel, Field, ValidationError
from torch import nn

from .backbones.base import Backbone, BackboneOptions
from .backbones.vgg import tap_sequential, vgg_layer_names
from .config import deep_merge
from .data import synthetic_array, write_synthetic_images
from .depth.base import DepthNetwork, DepthOptions
from .features import BACKBONE, NetworkSpec, Perception
from .hookspecs import hookimpl
from .losses.base import LossBatch, LossTerm, TermContext, TermOptions

#: load this module as a plugin to register the tiny networks
PLUGIN = "stylekit.testing"

__all__ = ["PLUGIN", "LoggerCheck", "TermCheck", "TinyDepth", "TinyDepthOptions", "TinyVGG", "TinyVGGOptions",
           "check_backbone", "check_depth_network", "check_logger", "check_metric", "check_options", "check_term",
           "make_images", "make_perception", "random_images", "tiny_recipe", "tiny_registry"]


def make_images(folder: str | Path, count: int = 6, size: tuple[int, int] = (48, 40), seed: int = 0) -> list[Path]:
    """Write ``count`` small random-but-structured RGB JPEGs (gradients plus blobs) into ``folder``."""
    return write_synthetic_images(folder, count, size, seed)


def random_images(count: int = 2, size: tuple[int, int] = (32, 32), seed: int = 0) -> torch.Tensor:
    """A batch like the trainer's: N×3×H×W float32 RGB in [0, 255], gradients plus blobs (``size`` is W, H)."""
    rng = np.random.default_rng(seed)
    arrays = [synthetic_array(rng, *size) for _ in range(count)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().contiguous()


def tiny_recipe(root: str | Path, **overrides: Any) -> dict:
    """A complete raw recipe for a seconds-long CPU run with a randomly initialized VGG-16.

    ``root`` gets a ``content/`` folder and a ``style.jpg``; keyword arguments deep-merge
    onto the recipe (e.g. ``losses={"tv": {"weight": 0.0}}``).
    """
    root = Path(root)
    if not (root / "content").is_dir():
        make_images(root / "content", 6)
    if not (root / "style.jpg").is_file():
        make_images(root / "style_src", 1, (40, 40), seed=99)[0].rename(root / "style.jpg")
    raw = {
        "name": "tiny",
        "data": {"root": str(root / "content"), "image_size": 32, "workers": 0, "crop": "random"},
        "style": {"images": [str(root / "style.jpg")], "size": 32},
        "model": {"channels": 8, "residual_blocks": 1},
        "backbone": {"name": "vgg16", "options": {"weights": "random"}},
        "losses": {"content": {"weight": 1.0, "layer": "relu2_2"},
                   "style": {"weight": 1e3, "layers": ["relu1_2", "relu2_2"]},
                   "tv": {"weight": 1e-6}},
        "schedule": {"iterations": 6, "batch_size": 2, "seed": 0},
        "log": {"every": 2, "sample_every": 3, "checkpoint_every": 3, "num_samples": 2},
        "precision": "fp32",
        "device": "cpu",
        "output_dir": str(root / "runs"),
    }
    return deep_merge(raw, overrides)


# -- tiny networks ------------------------------------------------------------

class TinyVGGOptions(BackboneOptions):
    weights: str = Field("random", description="Only 'random': seeded random initialization.")
    width: int = Field(4, ge=1, description="Channels of the first block; later blocks use 2× (capped at 4×).")
    seed: int = Field(0, description="Seed of the random initialization.")


class TinyVGG(Backbone):
    """VGG-16's layer layout and names with a few random channels: a stand-in backbone for tests."""

    name = "tiny_vgg"
    Options = TinyVGGOptions
    BLOCKS = (2, 2, 3, 3, 3)

    def __init__(self, options=None):
        super().__init__(options)
        width, layers, cin = self.options.width, [], 3
        generator = torch.Generator().manual_seed(self.options.seed)
        for block, convs in enumerate(self.BLOCKS):
            cout = width * min(2 ** block, 4)
            for _ in range(convs):
                conv = nn.Conv2d(cin, cout, 3, padding=1)
                with torch.no_grad():
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * math.sqrt(2 / (9 * cin)))
                    conv.bias.zero_()
                layers += [conv, nn.ReLU()]
                cin = cout
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self._names = vgg_layer_names(self.features)
        self.freeze()

    @property
    def layer_names(self) -> list[str]:
        return list(self._names)

    def forward(self, images: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        return tap_sequential(self.features, self._names, images / 127.5 - 1.0, self.check_layers(layers))


class TinyDepthOptions(DepthOptions):
    weights: str = Field("random", description="Only 'random': seeded random initialization.")
    seed: int = Field(0, description="Seed of the random initialization.")


class TinyDepth(DepthNetwork):
    """Two random convolutions and a softplus: a stand-in depth network for tests (output ≥ 0)."""

    name = "tiny_depth"
    Options = TinyDepthOptions
    output_kind = "inverse_depth"

    def __init__(self, options=None):
        super().__init__(options)
        torch_state = torch.random.get_rng_state()
        torch.manual_seed(self.options.seed)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1),
                                 nn.Softplus())
        torch.random.set_rng_state(torch_state)
        self.freeze()

    def intermediate_layers(self) -> list[str]:
        return ["hidden"]

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images / 255.0)

    def infer_layers(self, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        return {"hidden": self.net[1](self.net[0](images / 255.0))}


@hookimpl
def stylekit_backbones():
    return [TinyVGG]


@hookimpl
def stylekit_depth_networks():
    return [TinyDepth]


def tiny_registry(plugins: Iterable[str] = ()):
    """The registry with the built-ins, installed plugins, the tiny networks and ``plugins``."""
    from .plugins import get_registry

    return get_registry([PLUGIN, *plugins])


def make_perception(backbone: str = "tiny_vgg", backbone_options: dict | None = None, registry=None) -> Perception:
    """A :class:`Perception` with ``backbone`` under the alias "backbone", as the trainer builds it."""
    perception = Perception(registry or tiny_registry())
    perception.require(NetworkSpec.of("backbone", backbone, backbone_options or {}), alias=BACKBONE)
    return perception


# -- contract checks ------------------------------------------------------------

def check_options(options_model: type[BaseModel], options: dict | None = None) -> BaseModel:
    """Options validate, unknown keys are rejected, and every field has a description."""
    try:
        parsed = options_model.model_validate(options or {})
    except ValidationError as exc:
        raise AssertionError(f"{options_model.__name__} rejects the options {options!r}:\n{exc}") from None
    try:
        options_model.model_validate({**(options or {}), "no_such_option_xyz": 1})
    except ValidationError:
        pass
    else:
        raise AssertionError(f"{options_model.__name__} accepts an unknown key; subclass a stylekit options base "
                             "(they forbid extra keys)")
    missing = [name for name, field in options_model.model_fields.items() if not field.description]
    assert not missing, f"{options_model.__name__}: fields without Field(description=...): {', '.join(missing)}"
    return parsed


@dataclass
class TermCheck:
    """What :func:`check_term` computed, for further assertions."""

    term: LossTerm
    value: torch.Tensor  # the term on a batch of differing output/content images, shape (N,)
    perception: Perception
    batch: LossBatch


def _finite_per_image(value: Any, n: int, what: str) -> torch.Tensor:
    assert isinstance(value, torch.Tensor), f"{what} returned {type(value).__name__}, expected a torch.Tensor"
    assert value.shape == (n,), f"{what} returned shape {tuple(value.shape)}; expected ({n},), one value per image"
    assert value.is_floating_point(), f"{what} returned dtype {value.dtype}; expected a float tensor"
    assert bool(torch.isfinite(value).all()), f"{what} returned non-finite values {value.tolist()}"
    return value


def check_term(term_cls: type[LossTerm], options: dict | None = None, *, zero_for_identical: bool = False,
               per_image: bool = True, backbone: str = "tiny_vgg", backbone_options: dict | None = None,
               plugins: Iterable[str] = (), size: tuple[int, int] = (32, 32), batch_size: int = 2,
               atol: float = 1e-5) -> TermCheck:
    """Check a loss term against the contract the trainer relies on, with tiny random networks.

    - its options validate, reject unknown keys and describe every field;
    - the value is a finite float tensor of shape (N,), one unweighted value per image;
    - the gradient reaches the output image, and never the frozen networks;
    - with ``per_image``: each image's value does not depend on the rest of the batch;
    - with ``zero_for_identical``: the value is 0 when the output equals the content.

    ``backbone`` (default the tiny VGG-16 stand-in, which has VGG-16's layer names) is what the
    term sees as the recipe's backbone; networks the term asks for with ``networks()`` are built
    from the registry (the built-ins, installed plugins, ``plugins`` and the tiny networks).
    """
    assert issubclass(term_cls, LossTerm), f"{term_cls!r} is not a stylekit.LossTerm subclass"
    assert term_cls.name, f"{term_cls.__name__} has no `name`"
    assert issubclass(term_cls.Options, TermOptions), f"{term_cls.__name__}.Options must subclass stylekit.TermOptions"
    check_options(term_cls.Options, options)
    term = term_cls(options)
    perception = make_perception(backbone, backbone_options, tiny_registry(plugins))
    for spec in term.networks():
        assert isinstance(spec, NetworkSpec), f"{term_cls.__name__}.networks() must return stylekit.NetworkSpec objects"
        perception.require(spec)
    style = random_images(1, (size[0] + 8, size[1] + 8), seed=123)
    term.prepare(TermContext(perception=perception, style_images=[style], device=torch.device("cpu")))
    with torch.no_grad():
        style_taps = term.style_taps()
        term.set_style([perception.extract(style, style_taps) if style_taps else {}])
    taps = term.taps()
    output_taps = list(dict.fromkeys([*taps, *term.output_taps()]))
    content = random_images(batch_size, size, seed=1)
    output = random_images(batch_size, size, seed=2).requires_grad_(True)

    def run(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            content_features = perception.extract(x, taps)
        return term(LossBatch(y, x, perception.extract(y, output_taps), content_features))

    with torch.no_grad():
        content_features = perception.extract(content, taps)
    batch = LossBatch(output, content, perception.extract(output, output_taps), content_features)
    value = _finite_per_image(term(batch), batch_size, f"{term_cls.__name__}.forward")
    if value.requires_grad:
        value.sum().backward()
    grad = output.grad
    assert grad is not None and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0, (
        f"{term_cls.__name__}: no finite, non-zero gradient reaches the output image (did it detach, or use "
        "content-side features only?)")
    leaked = [name for name, p in perception.named_parameters() if p.requires_grad or p.grad is not None]
    assert not leaked, f"{term_cls.__name__}: gradient reached frozen network parameters: {leaked[:5]}"
    own = [name for name, p in term.named_parameters() if p.requires_grad]
    assert not own, f"{term_cls.__name__} has trainable parameters {own[:5]}; only the transformer is trained"
    if per_image and batch_size > 1:
        with torch.no_grad():
            single = torch.cat([run(output[i:i + 1].detach(), content[i:i + 1]) for i in range(batch_size)])
        assert torch.allclose(single, value.detach(), rtol=1e-4, atol=atol), (
            f"{term_cls.__name__}: image values depend on the rest of the batch (batched {value.tolist()}, "
            f"one at a time {single.tolist()}); return one value per image, not a batch statistic")
    if zero_for_identical:
        with torch.no_grad():
            same = run(content.clone(), content)
        assert torch.allclose(same, torch.zeros_like(same), atol=atol), (
            f"{term_cls.__name__}: expected 0 when the output equals the content, got {same.tolist()}")
    return TermCheck(term, value.detach(), perception, batch)


def _check_frozen_network(net: nn.Module, what: str) -> None:
    assert all(not p.requires_grad for p in net.parameters()), f"{what}: parameters must be frozen (call self.freeze())"
    net.train()
    assert not net.training, f"{what}: must stay in eval mode when .train() is called (override train())"


def check_backbone(backbone_cls: type[Backbone], options: dict | None = None, *,
                   sizes: Iterable[tuple[int, int]] = ((32, 32), (37, 29))) -> Backbone:
    """A backbone: options valid, frozen and in eval mode, every layer returned for odd sizes, gradient to the input."""
    check_options(backbone_cls.Options, options)
    net = backbone_cls(options)
    what = backbone_cls.__name__
    _check_frozen_network(net, what)
    layers = net.layer_names
    assert layers and all(isinstance(n, str) for n in layers), f"{what}.layer_names must list the tappable layers"
    for w, h in sizes:
        images = random_images(2, (w, h)).requires_grad_(True)
        out = net(images, layers)
        assert list(out) == list(layers) or set(out) == set(layers), f"{what} returned {sorted(out)} for {layers}"
        for name, value in out.items():
            assert value.ndim == 4 and value.shape[0] == 2, f"{what} layer {name}: shape {tuple(value.shape)}"
            assert bool(torch.isfinite(value).all()), f"{what} layer {name} is not finite"
        sum(v.float().mean() for v in out.values()).backward()
        assert images.grad is not None and float(images.grad.abs().sum()) > 0, f"{what}: no gradient to the input"
    try:
        net(random_images(1), ["no_such_layer_xyz"])
    except ValueError:
        pass
    else:
        raise AssertionError(f"{what} accepts an unknown layer name; call self.check_layers(layers)")
    return net


def check_depth_network(depth_cls: type[DepthNetwork], options: dict | None = None, *,
                        sizes: Iterable[tuple[int, int]] = ((32, 32), (37, 29))) -> DepthNetwork:
    """A depth network: options valid, frozen, N×1×H×W at the input's size, finite, gradient to the input."""
    check_options(depth_cls.Options, options)
    net = depth_cls(options)
    what = depth_cls.__name__
    _check_frozen_network(net, what)
    for w, h in sizes:
        images = random_images(2, (w, h)).requires_grad_(True)
        depth = net(images)["output"]
        assert depth.shape == (2, 1, h, w), f"{what}: output shape {tuple(depth.shape)}, expected (2, 1, {h}, {w})"
        assert bool(torch.isfinite(depth).all()), f"{what}: non-finite output"
        depth.float().mean().backward()
        assert images.grad is not None and float(images.grad.abs().sum()) > 0, f"{what}: no gradient to the input"
    return net


def check_metric(metric_cls, options: dict | None = None, *, zero_for_identical: bool = False,
                 atol: float = 1e-5) -> torch.Tensor:
    """A metric: options valid, (N,) finite values, per image; optionally 0 for identical images."""
    from .metrics import Metric

    assert issubclass(metric_cls, Metric), f"{metric_cls!r} is not a stylekit.Metric subclass"
    assert metric_cls.name, f"{metric_cls.__name__} has no `name`"
    check_options(metric_cls.Options, options)
    metric = metric_cls(options)
    content, stylized = random_images(2, seed=1), random_images(2, seed=2)
    with torch.no_grad():
        value = _finite_per_image(metric(content, stylized), 2, f"{metric_cls.__name__}")
        single = torch.cat([metric(content[i:i + 1], stylized[i:i + 1]) for i in range(2)])
        assert torch.allclose(single, value, rtol=1e-4, atol=atol), (
            f"{metric_cls.__name__}: values depend on the rest of the batch ({value.tolist()} vs {single.tolist()})")
        if zero_for_identical:
            same = metric(content, content.clone())
            assert torch.allclose(same, torch.zeros_like(same), atol=atol), (
                f"{metric_cls.__name__}: expected 0 for identical images, got {same.tolist()}")
    return value


@dataclass
class LoggerCheck:
    """What :func:`check_logger` did, for further assertions."""

    loggers: list  # the instances it drove: the first run's, then the resumed run's
    metrics: list  # the StepMetrics it logged, in order (steps 1, 2, 3, then 3 again after resuming at 2)
    run_dir: Path


def check_logger(logger_cls, options: dict | None = None, *, root: str | Path | None = None) -> LoggerCheck:
    """A logger: options valid, a plain name (it names the logger's folder), and the calls the trainer makes go
    through without error — ``start``, ``log_recipe``, ``log_metrics`` at steps 1–3, ``log_image`` with a sample
    grid, ``finalize("finished")`` — then the same for a run resumed at step 2 that is interrupted at step 3.
    ``root``: a folder for the run folder (default: a new temporary one)."""
    import tempfile

    from .loggers.base import Logger, StepMetrics
    from .runs.folder import RunDir
    from .viz import image_grid

    assert isinstance(logger_cls, type) and issubclass(logger_cls, Logger), \
        f"{logger_cls!r} is not a stylekit.Logger subclass"
    assert logger_cls.name, f"{logger_cls.__name__} has no `name`"
    check_options(logger_cls.Options, options)
    root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="stylekit-check-logger-"))
    run = RunDir(root / "run")
    run.path.mkdir(parents=True, exist_ok=True)
    run.logger_dir(logger_cls.name)  # raises for a name that cannot be a folder
    recipe = tiny_recipe(root)
    images = random_images(2, seed=3)
    grid = image_grid([[image, image.flip(-1)] for image in images], column_titles=["content", "stylized"])
    logged, loggers = [], []
    for resumed_at, steps, status in ((None, (1, 2, 3), "finished"), (2, (3,), "interrupted")):
        logger = logger_cls(options)
        loggers.append(logger)
        logger.start(run, resumed_at)
        logger.log_recipe(recipe)
        for step in steps:
            terms = {"content": {"raw": 1.0 / step, "weighted": 1.0 / step},
                     "style": {"raw": 2e-3 / step, "weighted": 2.0 / step}}
            metrics = StepMetrics(step=step, time=0.5 * step, loss=3.0 / step, terms=terms, lr=1e-3,
                                  steps_per_second=2.0)
            logger.log_metrics(metrics)
            logged.append(metrics)
            if step >= 2:
                logger.log_image("samples", grid, step)
        logger.finalize(status)
    return LoggerCheck(loggers, logged, run.path)
