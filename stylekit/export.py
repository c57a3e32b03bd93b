"""``stylekit export``: a trained transformer as ONNX (dynamic height/width), a standalone TorchScript file, or a
compact stylekit model file (safetensors, float16) to share or ship.

The training module pads to a multiple of 4 only when needed (a Python ``if`` on the
input size), which a tracer would freeze at the example's size. :class:`Deployable`
always pads by ``(4 - h % 4) % 4`` instead (zero when already aligned), so one graph
serves every size. Instance norm exports as ONNX ``InstanceNormalization``; reflection
padding as ``Pad(mode=reflect)``. ONNX traces the model as trained, fast layers included
(:mod:`stylekit.models.fast_layers`); each ONNX file is checked with onnxruntime against PyTorch
right after export. TorchScript scripts the plain network (the same state dict in the paper's
modules), so the file loads with ``torch.jit.load`` alone, without stylekit installed.

Both carry the checkpoint's model card (:mod:`stylekit.card`): ONNX in ``metadata_props``, TorchScript
as extra files (``model_card.json``, ``MODEL_CARD.md``); :func:`write_card` puts ``MODEL_CARD.md`` beside.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .card import CARD_FILE, METADATA_KEY, card_markdown, card_metadata, card_summary, evaluation_entry
from .errors import StylekitError
from .models.base import TransformerNetwork
from .session import resolve_model
from .stylize import MARGIN

#: largest allowed |onnxruntime − PyTorch| on the 0–255 scale
ONNX_TOLERANCE = 1.0
#: opsets ``--opset`` accepts: the folded layers export as Einsum (opset 12); the
#: TorchScript-based exporter used here goes up to 20
MIN_OPSET, MAX_OPSET = 12, 20


class ExportError(StylekitError):
    """Export failed, or the exported model disagrees with PyTorch."""


class Deployable(nn.Module):
    """The transformer with shape-independent padding: RGB 0–255 N×3×H×W in, same shape out (H, W ≥ 5)."""

    def __init__(self, net: TransformerNetwork):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[2], images.shape[3]
        pad_h = (4 - h % 4) % 4
        pad_w = (4 - w % 4) % 4
        x = F.pad(images / 127.5 - 1.0, [0, pad_w, 0, pad_h], mode="reflect")
        y = self.net.export_body(x)
        y = y[:, :, :h, :w]
        return 127.5 * (torch.tanh(y) + 1.0)


class ConditionalDeployable(Deployable):
    """A multi-style network as :class:`Deployable`, with a second input: ``style_weights``, S weights over its
    styles (one-hot for one style, any mixture to blend), for every image of the batch."""

    def forward(self, images: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        with self.net.conditioned(style_weights.reshape(1, -1)):
            return super().forward(images)


def deployable(net: TransformerNetwork) -> Deployable:
    return ConditionalDeployable(net) if net.styles else Deployable(net)


def example_inputs(net: TransformerNetwork, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The inputs an exported ``net`` takes for ``image``: the image, and for a multi-style network a mixture of
    all its styles (so every style's γ/β takes part in the checks)."""
    if not net.styles:
        return (image,)
    count = len(net.styles)
    return image, torch.arange(1, count + 1, dtype=torch.float32) / (count * (count + 1) / 2)


def run_network(net: TransformerNetwork, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``net`` (in float32, on the CPU, in eval mode) on :func:`example_inputs`' inputs."""
    with torch.no_grad():
        return net.float().cpu().eval()(*inputs)


def _example(size: int = 512, seed: int = 0) -> torch.Tensor:
    """A structured test image (gradients plus noise), 1×3×size×size in [0, 255]."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = torch.stack([xx, yy, (xx + yy) / 2]) * 200
    return (base + 55 * torch.rand(3, size, size, generator=gen)).clamp(0, 255).unsqueeze(0)


#: what ONNX export imports: torch's TorchScript-based exporter (``dynamo=False``) needs onnx (not onnxscript,
#: which only the dynamo exporter uses); the check right after export needs onnxruntime
ONNX_PACKAGES = ("onnx", "onnxruntime")
ONNX_HINT = "pip install 'stylekit[export]'"


def require_onnx() -> None:
    """Stop before any work, with the install command, when the export extra is missing.

    Checked up front because torch reports a missing onnx as its own ``OnnxExporterError`` (not an
    ``ImportError``) and only after tracing the model.
    """
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"ONNX export needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                          f"not installed: {ONNX_HINT} (or --format torchscript, which needs nothing more)")


#: what `stylekit stylize` does around the network, for formats run without stylekit (stylekit.stylize.MARGIN)
MARGIN_HINT = (f" As `stylekit stylize` does, mirror {MARGIN} pixels around the image first (e.g. numpy.pad(…, "
               f"mode=\"reflect\")) and crop them off the output: the network's own edge rows then fall outside it.")

#: how to run each exported format, for MODEL_CARD.md
USAGE = {
    "onnx": "ONNX: input `image`, N×3×H×W float32 RGB in [0, 255] (any H, W ≥ 5); output `stylized`, the same "
            "shape and range. E.g. `onnxruntime.InferenceSession(PATH).run(None, {\"image\": x})[0]`." + MARGIN_HINT,
    "torchscript": "TorchScript: `torch.jit.load(PATH)(x)` with x an N×3×H×W float tensor, RGB in [0, 255] (any "
                   "H, W ≥ 5); returns the same shape and range. No stylekit needed." + MARGIN_HINT,
    "safetensors": "stylekit: `stylekit stylize PATH photo.jpg`, or `stylekit.load(PATH).stylize(image)` in Python "
                   "(weights stored in float16, computed in float32).",
}


#: what a multi-style network's export takes beside the image
STYLE_USAGE = {
    "onnx": " A multi-style network has a second input, `style_weights`: {n} float32 weights over its styles ({names}), "
            "one-hot to pick one, any mixture summing to 1 to blend.",
    "torchscript": " A multi-style network takes a second argument: {n} float weights over its styles ({names}), one-hot "
                   "to pick one, any mixture summing to 1 to blend.",
    "safetensors": " A multi-style network needs a style: `--style {first}` or `stylize(image, style={first!r})`.",
}


def usage(format_: str, exported: str | Path, styles: list[str] | None = None) -> str:
    text = USAGE[format_].replace("PATH", repr(Path(exported).name))
    if styles:
        text += STYLE_USAGE[format_].format(n=len(styles), names=", ".join(styles), first=styles[0])
    return text


def export_onnx(model: TransformerNetwork, path: str | Path, *, opset: int = 17, verify_size: int = 512,
                card: dict | None = None) -> float:
    """Write ``path`` (with ``card`` in its ``metadata_props``) and return max |onnxruntime − PyTorch| on a
    ``verify_size`` image; raise above tolerance. A multi-style network gets a second input, ``style_weights``."""
    require_onnx()
    path = Path(path)
    net = deployable(model.float().cpu().eval()).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter is chatty (deprecation, instance-norm mode)
            torch.onnx.export(net, example_inputs(model, _example(64)), str(path), dynamo=False,
                              opset_version=opset, input_names=["image", "style_weights"][:1 + bool(model.styles)],
                              output_names=["stylized"],
                              dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                            "stylized": {0: "batch", 2: "height", 3: "width"}})
    except (ImportError, getattr(torch.onnx, "OnnxExporterError", ImportError)) as exc:
        if "not installed" not in str(exc) and not isinstance(exc, ImportError):
            raise
        raise ExportError(f"ONNX export needs a package torch could not import: {ONNX_HINT} ({exc})") from exc
    if card:
        _onnx_metadata(path, card_metadata(card) | card_summary(card))
    return verify_onnx(path, model, verify_size)


def _onnx_metadata(path: Path, props: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in props.items():
        entry = existing.get(key) or proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def read_onnx_card(path: str | Path) -> dict:
    """The model card an exported ONNX file carries ({} without one)."""
    import onnx

    from .card import parse_card

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return parse_card(props.get(METADATA_KEY))


def verify_onnx(path: str | Path, model: TransformerNetwork, size: int = 512) -> float:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError(f"verifying ONNX needs onnxruntime: {ONNX_HINT}") from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for h, w in ((size, size), (size - 3, size // 2 + 1)):  # also a size that is not a multiple of 4
        inputs = example_inputs(model, _example(size)[:, :, :h, :w].contiguous())
        expected = run_network(model, inputs).numpy()
        got = session.run(None, dict(zip(("image", "style_weights"), (i.numpy() for i in inputs))))[0]
        if got.shape != expected.shape:
            raise ExportError(f"{path}: ONNX output shape {got.shape} != PyTorch {expected.shape} for {h}×{w} input")
        worst = max(worst, float(abs(got - expected).max()))
    if not worst < ONNX_TOLERANCE:
        raise ExportError(f"{path}: onnxruntime differs from PyTorch by up to {worst:.3g} (0–255 scale; "
                          f"allowed < {ONNX_TOLERANCE}); the file is kept for inspection")
    return worst


def export_torchscript(model: TransformerNetwork, path: str | Path, *, card: dict | None = None) -> float:
    """Script the model (sizes stay dynamic; ``card`` as extra files ``model_card.json`` and ``MODEL_CARD.md``)
    and return max |TorchScript − PyTorch| on a small odd-sized image. A multi-style network, whose style is
    set on its norm layers for each call, is traced instead (checked at another size than traced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = deployable(model.float().cpu().eval().plain().eval()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(net, example_inputs(model, _example(64))) if model.styles else torch.jit.script(net)
        extra = {f"{METADATA_KEY}.json": json.dumps(card),
                 CARD_FILE: card_markdown(card, usage("torchscript", path, model.styles))} if card else {}
        torch.jit.save(scripted, str(path), _extra_files=extra)
        loaded = torch.jit.load(str(path))
    inputs = example_inputs(model, _example(96)[:, :, :93, :70].contiguous())
    with torch.no_grad():
        diff = float((loaded(*inputs) - run_network(model, inputs)).abs().max())
    if not diff < ONNX_TOLERANCE:
        raise ExportError(f"{path}: TorchScript differs from PyTorch by up to {diff:.3g}")
    return diff


def export_safetensors(model: TransformerNetwork, source: str | Path, path: str | Path, *, half: bool = True,
                       card: dict | None = None) -> float:
    """A stylekit model file to share or ship (``stylekit/models/pretrained/``): the checkpoint's weights, in
    float16 when ``half`` (half the size; stylize loads them into float32), with the source file's metadata
    (model options, model card). Returns max |copy − original| on a test image (0–255 scale)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from .checkpoint import load_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with safe_open(str(source), "pt") as f:
        metadata = dict(f.metadata() or {})
    dtype = torch.float16 if half else torch.float32
    state = {k: (v.to(dtype) if v.is_floating_point() else v).detach().contiguous().cpu()
             for k, v in model.state_dict().items()}
    if card:
        metadata.update(card_metadata(card))  # e.g. with the held-out results `export --evaluation` added
    save_file(state, str(path), metadata={**metadata, "stored_dtype": str(dtype).removeprefix("torch.")})
    inputs = example_inputs(model, _example(96)[:, :, :93, :70].contiguous())
    diff = float((run_network(load_model(path), inputs) - run_network(model, inputs)).abs().max())
    if not diff < ONNX_TOLERANCE:
        raise ExportError(f"{path}: the {dtype} copy differs from the checkpoint by up to {diff:.3g} (0–255 scale); "
                          "export without --half")
    return diff


def write_card(card: dict, exported: str | Path, format_: str, styles: list[str] | None = None) -> Path:
    """``MODEL_CARD.md`` beside the exported file (what it is, its style's license, how it was trained, how to run it);
    ``NAME.md`` for a safetensors model file, so several can share a folder (``stylekit/models/pretrained/``)."""
    exported = Path(exported)
    out = exported.parent / (f"{exported.stem}.md" if format_ == "safetensors" else CARD_FILE)
    styles = styles or [entry["style"] for entry in card.get("style") or [] if entry.get("style")]
    out.write_text(card_markdown(card, usage(format_, exported, styles)), encoding="utf-8")
    return out


def evaluation_of(model_file: Path, report_file: Path) -> dict:
    """The card entry (:func:`stylekit.card.evaluation_entry`) for ``model_file`` in an evaluation's metrics.json
    (``stylekit export --evaluation``): the evaluated model is found as the session finds any model."""
    try:
        report = json.loads(Path(report_file).read_text())
        models, sources = report["inputs"]["models"], report["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StylekitError(f"--evaluation {report_file}: not a `stylekit evaluate` metrics.json") from None
    for given, source in zip(models, sources):
        try:
            if resolve_model(given).resolve() == model_file.resolve():
                return evaluation_entry(report, source)
        except StylekitError:
            continue
    raise StylekitError(f"--evaluation {report_file}: it did not evaluate {model_file} (it evaluated "
                        f"{', '.join(map(str, models)) or 'no checkpoints'}); give the evaluation of this model")
