"""``stylekit bench``: stylekit's training step against a plain fp32 baseline, on the same networks and shapes.

The baseline re-implements the training step of pytorch/examples' ``fast_neural_style``
(fp32, NCHW): its transformer (:class:`ReferenceTransformerNet`, same shapes as stylekit's,
plain torch modules) forward, VGG-16 slices run on ŷ and on x (both with autograd
enabled, as the example does), MSE content loss at relu2_2, MSE between Gram matrices
at relu1_2…relu4_3, backward, Adam step, and a ``.item()`` per step for its running
sums. Both steps run in one process, interleaved in rounds, so load on the machine
affects them alike. Results: steps/s, images/s, peak memory, the stylekit/baseline
ratio, FLOPs per step (``torch.utils.flop_counter``) and, on CUDA, achieved TFLOP/s
against the device's peak.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .functional import IMAGENET_MEAN, IMAGENET_STD
from .models.base import TransformerNetwork

#: dense peak TFLOP/s by device-name fragment: (bf16/fp16 tensor cores, TF32 tensor cores, plain fp32)
DEVICE_PEAKS = {
    "H200": (989.0, 494.7, 67.0), "H100": (989.0, 494.7, 67.0), "A100": (312.0, 156.0, 19.5),
    "L40S": (362.0, 183.0, 91.6), "L4": (121.0, 60.0, 30.3), "A10": (125.0, 62.5, 31.2),
    "4090": (165.0, 82.6, 82.6), "3090": (71.0, 35.6, 35.6), "V100": (125.0, 15.7, 15.7), "T4": (65.0, 8.1, 8.1),
}


def bench_recipe(folder: Path, size: int, batch: int) -> dict:
    """The benchmark's default recipe: Johnson's settings with a random-weight VGG-16 (no download).

    Content and style images are synthetic (:func:`stylekit.data.write_synthetic_images`), written into ``folder``.
    """
    from .data import write_synthetic_images

    content = write_synthetic_images(folder / "content", 6)
    style = write_synthetic_images(folder / "style", 1, (size, size), seed=3)[0]
    return {
        "name": "bench",
        "data": {"root": str(content[0].parent), "image_size": size, "workers": 0, "crop": "squash"},
        "style": {"images": [str(style)], "size": size},
        "model": {"norm": "instance", "upsample": "nearest", "channels": 32, "residual_blocks": 5},
        "backbone": {"name": "vgg16", "options": {"weights": "random"}},
        "losses": {"content": {"weight": 1.0, "layer": "relu2_2"},
                   "style": {"weight": 5.0, "layers": ["relu1_2", "relu2_2", "relu3_3", "relu4_3"],
                             "reduction": "mean"},
                   "tv": {"weight": 1e-6}},
        "schedule": {"iterations": 10, "batch_size": batch, "seed": 0},
        "log": {"every": 2, "sample_every": 3, "checkpoint_every": 3, "num_samples": 2},
        "precision": "auto", "device": "auto",
        "output_dir": str(folder / "runs"),
    }


# -- the baseline (pytorch/examples fast_neural_style, re-implemented) ------------

class _RefConv(nn.Module):
    """The example's ConvLayer: reflection pad + conv."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class _RefUpsampleConv(_RefConv):
    """The example's UpsampleConvLayer: nearest ×2 interpolation, then reflection pad + conv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, mode="nearest", scale_factor=2))


class _RefResidual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.in1 = _RefConv(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)
        self.conv2, self.in2 = _RefConv(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.in2(self.conv2(self.relu(self.in1(self.conv1(x))))) + x


class ReferenceTransformerNet(nn.Module):
    """The example's TransformerNet (instance norm, upsample + conv), built from plain torch modules.

    Kept separate from stylekit's :class:`TransformerNet` so the baseline never benefits from
    stylekit's reformulated layers. Its output is 0–255 without a tanh, as the example's is.
    """

    def __init__(self, channels: int = 32, residual_blocks: int = 5):
        super().__init__()
        c = channels
        self.conv1, self.in1 = _RefConv(3, c, 9), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = _RefConv(c, 2 * c, 3, 2), nn.InstanceNorm2d(2 * c, affine=True)
        self.conv3, self.in3 = _RefConv(2 * c, 4 * c, 3, 2), nn.InstanceNorm2d(4 * c, affine=True)
        self.res = nn.Sequential(*[_RefResidual(4 * c) for _ in range(residual_blocks)])
        self.deconv1, self.in4 = _RefUpsampleConv(4 * c, 2 * c, 3), nn.InstanceNorm2d(2 * c, affine=True)
        self.deconv2, self.in5 = _RefUpsampleConv(2 * c, c, 3), nn.InstanceNorm2d(c, affine=True)
        self.deconv3 = _RefConv(c, 3, 9)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


class ReferenceVGG16(nn.Module):
    """VGG-16 cut into four slices ending at relu1_2, relu2_2, relu3_3, relu4_3, returning all four."""

    def __init__(self, features: nn.Sequential):
        super().__init__()
        import copy

        layers = copy.deepcopy(features[:23]).float()
        for p in layers.parameters():
            p.data = p.data.contiguous()  # plain NCHW weights, whatever format the source used
        for module in layers:
            if isinstance(module, nn.ReLU):
                module.inplace = True  # as torchvision builds it; the example leaves them in place
        self.slices = nn.ModuleList([layers[:4], layers[4:9], layers[9:16], layers[16:23]])
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for part in self.slices:
            x = part(x)
            out.append(x)
        return out


def reference_gram(y: torch.Tensor) -> torch.Tensor:
    b, ch, h, w = y.size()
    f = y.view(b, ch, w * h)
    return f.bmm(f.transpose(1, 2)) / (ch * h * w)


def reference_normalize(batch: torch.Tensor) -> torch.Tensor:
    """ImageNet normalization of a 0–255 batch, as the example's ``normalize_batch``."""
    mean = batch.new_tensor(IMAGENET_MEAN).view(-1, 1, 1)
    std = batch.new_tensor(IMAGENET_STD).view(-1, 1, 1)
    return (batch / 255.0 - mean) / std


class ReferenceStep:
    """One training step of the example's loop, on the given transformer and VGG weights."""

    def __init__(self, transformer: nn.Module, vgg_features: nn.Sequential, style: torch.Tensor, batch: int,
                 lr: float, content_weight: float, style_weight: float, device: torch.device):
        self.transformer = transformer.to(device).train()
        self.vgg = ReferenceVGG16(vgg_features).to(device)
        self.optimizer = torch.optim.Adam(self.transformer.parameters(), lr)
        self.content_weight, self.style_weight = content_weight, style_weight
        with torch.no_grad():
            style = style.to(device).repeat(batch, 1, 1, 1)
            self.gram_style = [reference_gram(f) for f in self.vgg(reference_normalize(style))]
        self.agg_content, self.agg_style = 0.0, 0.0

    def __call__(self, x: torch.Tensor) -> None:
        n_batch = len(x)
        self.optimizer.zero_grad()
        y = self.transformer(x)
        y, x = reference_normalize(y), reference_normalize(x)
        features_y, features_x = self.vgg(y), self.vgg(x)
        content_loss = self.content_weight * F.mse_loss(features_y[1], features_x[1])
        style_loss = 0.0
        for ft_y, gm_s in zip(features_y, self.gram_style):
            style_loss = style_loss + F.mse_loss(reference_gram(ft_y), gm_s[:n_batch])
        style_loss = style_loss * self.style_weight
        total = content_loss + style_loss
        total.backward()
        self.optimizer.step()
        self.agg_content += content_loss.item()
        self.agg_style += style_loss.item()


# -- measuring ------------------------------------------------------------------

@dataclass
class Measurement:
    name: str
    steps: int = 0
    seconds: float = 0.0
    images_per_step: int = 0
    peak_memory_mb: float | None = None
    flops_per_step: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0

    @property
    def images_per_s(self) -> float:
        return self.steps_per_s * self.images_per_step

    def tflops(self) -> float | None:
        return self.flops_per_step * self.steps_per_s / 1e12 if self.flops_per_step else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps_per_s": self.steps_per_s, "images_per_s": self.images_per_s,
                "tflops": self.tflops()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(fn: Callable[[], Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def _timed(fn: Callable[[], Any], steps: int, device: torch.device) -> tuple[float, float | None]:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return seconds, peak


def device_peak(device: torch.device) -> tuple[str, float | None, float | None]:
    """(name, low-precision peak, fp32 peak); the fp32 peak is TF32's when cuDNN may use TF32 (its default)."""
    if device.type != "cuda":
        from .hardware import cpu_description

        return f"cpu: {cpu_description()}", None, None
    name = torch.cuda.get_device_name(device)
    for key, (low, tf32, fp32) in DEVICE_PEAKS.items():
        if key in name:
            return name, low, tf32 if torch.backends.cudnn.allow_tf32 else fp32
    return name, None, None


def run_training_bench(raw: dict, *, steps: int = 10, rounds: int = 3, warmup: int = 3,
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Interleaved rounds of ``steps`` stylekit steps and ``steps`` baseline steps on identical inputs."""
    from .config import validate_recipe
    from .trainer import Trainer

    recipe = validate_recipe(raw)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(recipe, Path(tmp) / "run", show_progress=False)
        trainer.build()
    device, batch, size = trainer.device, recipe.schedule.batch_size, recipe.data.image_size
    style_weight = float(recipe.losses.get("style", {}).get("weight", 5.0))
    options = recipe.options_at("model")  # the baseline is Johnson's network at this width and depth
    reference_net = ReferenceTransformerNet(getattr(options, "channels", 32), getattr(options, "residual_blocks", 5))
    backbone = trainer.perception.network("backbone")
    features = getattr(backbone, "features", None)
    if features is None:
        features = getattr(backbone, "_orig_mod").features
    from .data import load_image

    style = load_image(recipe.style.images[0], recipe.style.size)
    reference = ReferenceStep(reference_net, features, style, batch, recipe.optim.lr, 1.0, style_weight, device)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 3, size, size, generator=gen) * 255).to(device)
    x_host = x.cpu().pin_memory() if device.type == "cuda" else x

    def ours():
        trainer.train_step(x_host)

    def theirs():
        reference(x)

    say = progress or (lambda text: None)
    say(f"warming up ({warmup} steps each)")
    for _ in range(warmup):
        ours()
        theirs()
    _sync(device)
    results = {"stylekit": Measurement("stylekit", images_per_step=batch),
               "reference": Measurement("reference", images_per_step=batch)}
    for r in range(rounds):
        for name, fn in (("stylekit", ours), ("reference", theirs)) if r % 2 == 0 else \
                (("reference", theirs), ("stylekit", ours)):
            say(f"round {r + 1}/{rounds}: {name}")
            seconds, peak = _timed(fn, steps, device)
            m = results[name]
            m.steps += steps
            m.seconds += seconds
            if peak is not None:
                m.peak_memory_mb = max(m.peak_memory_mb or 0.0, peak)
    say("counting FLOPs")
    results["stylekit"].flops_per_step = count_flops(ours)
    results["reference"].flops_per_step = count_flops(theirs)
    name, peak_low, peak_fp32 = device_peak(device)
    results["stylekit"].extra = {"precision": str(trainer.dtype).removeprefix("torch."),
                                 "channels_last": {(True, True): "all", (False, True): "perception",
                                                   (True, False): "transformer", (False, False): "no"}[
                                     (trainer.channels_last, trainer.perception_channels_last)],
                                 "compile": recipe.performance.compile}
    results["reference"].extra = {"precision": "float32", "channels_last": "no", "compile": False}
    out = {"device": name, "batch": batch, "size": size, "steps_per_round": steps, "rounds": rounds,
           "threads": torch.get_num_threads(), "torch": torch.__version__,
           "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "results": {k: v.as_dict() for k, v in results.items()},
           "ratio": results["stylekit"].steps_per_s / max(results["reference"].steps_per_s, 1e-12)}
    if peak_low is not None:
        sk = results["stylekit"].tflops() or 0.0
        ref = results["reference"].tflops() or 0.0
        low = trainer.dtype != torch.float32
        out["peak_tflops"] = {"low_precision": peak_low, "fp32": peak_fp32}
        out["utilization"] = {"stylekit": sk / (peak_low if low else peak_fp32), "reference": ref / peak_fp32}
    out["_model"] = trainer.model  # for the stylization benchmark; dropped before writing JSON
    out["_dtype"] = trainer.dtype
    return out


def run_stylize_bench(model: TransformerNetwork, device: torch.device, dtype: torch.dtype, *,
                      sizes: dict[str, tuple[int, int]] | None = None, repeats: int = 3,
                      channels_last: bool = False) -> dict[str, Any]:
    """Megapixels per second of inference at 512² and 1080p (one image at a time; a multi-style network in its
    first style)."""
    from .hardware import autocast
    from .stylize import stylization

    sizes = sizes or {"512px": (512, 512), "1080p": (1080, 1920)}
    network = model.to(device).eval()
    model = stylization(network, network.styles[0] if network.styles else None)
    out = {}
    for label, (h, w) in sizes.items():
        x = torch.rand(1, 3, h, w, device=device) * 255
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

        def run():
            with torch.no_grad(), autocast(device, dtype):
                model(x)

        run()
        seconds, peak = _timed(run, repeats, device)
        out[label] = {"height": h, "width": w, "seconds_per_image": seconds / repeats,
                      "megapixels_per_s": h * w * repeats / seconds / 1e6, "peak_memory_mb": peak}
    network.train()
    return out


def write_json(result: dict[str, Any], path: Path) -> None:
    clean = {k: v for k, v in result.items() if not k.startswith("_")}
    path.write_text(json.dumps(clean, indent=2) + "\n")
