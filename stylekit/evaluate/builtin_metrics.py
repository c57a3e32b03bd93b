"""stylekit's built-in evaluation metrics, registered through the public ``stylekit_metrics`` hook like a plugin's.

Each is a :class:`stylekit.Metric`; one that yields several columns (precision/recall/F…) returns them all
from ``compute`` and ``metric(content, stylized)`` returns its headline column. Each column is described by
a :class:`~stylekit.metrics.Column` (formula, network, range, direction), the single source of
docs/metrics.md and the report's glossary.

Metrics reach their networks through :class:`EvalNetworks`, which gets each from the same cache as
training (:class:`~stylekit.features.Perception`) and memoizes their last outputs, so the content
image's depth and edges are computed once however many models are compared.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from .. import metrics as base
from ..errors import StylekitError, WeightsNotFoundError
from ..features import NetworkSpec, Perception
from ..functional import feature_reconstruction, gram_matrix
from ..hookspecs import hookimpl
from ..metrics import Column, MetricContext, MetricOptions, MetricUnavailable
from ..weights import WeightsFile, resolve_weights
from . import functional as Fm
from .looks import LOOKS_METRICS

# -- networks -------------------------------------------------------------------------------------------------
class _Memo:
    """Remembers a network's outputs for the last few input tensors (by identity and version)."""

    def __init__(self, fn, size: int = 16):
        self.fn, self.size, self.items = fn, size, []

    def __call__(self, x: torch.Tensor):
        for ref, version, out in self.items:
            if ref is x and version == x._version:
                return out
        out = self.fn(x)
        self.items.append((x, x._version, out))
        del self.items[:-self.size]
        return out

    def clear(self) -> None:
        self.items.clear()


class EvalNetworks:
    """The frozen networks metrics share, by role: a depth network, HED, a loss backbone (built lazily, memoized).

    Instances come from a :class:`~stylekit.features.Perception`, the cache training uses too: each
    distinct spec is built once (``--backbone hed_vgg16`` gives edges and losses one HED), and an
    evaluation handed a run's Perception reuses the networks its loss terms built. A network that
    cannot be built raises :class:`MetricUnavailable` naming the missing file; the evaluator reports
    the metrics that needed it as not available.
    """

    def __init__(self, registry=None, *, depth: NetworkSpec | None = None, hed: NetworkSpec | None = None,
                 backbone: NetworkSpec | None = None, device: str | torch.device = "cpu",
                 perception: Perception | None = None):
        self.device = torch.device(device)
        self.perception = perception if perception is not None else Perception(registry)
        self.specs = {"depth": depth, "hed": hed or NetworkSpec.of("backbone", "hed_vgg16"),
                      "backbone": backbone or NetworkSpec.of("backbone", "vgg16")}
        self._memos: dict[str, _Memo] = {}

    def describe(self, which: str) -> str:
        spec = self.specs[which]
        return "(none)" if spec is None else spec.label

    def identities(self, which: str) -> set[str]:
        """The pretrained weights behind the network of a role, read from its spec (nothing is built)."""
        spec = self.specs[which]
        if spec is None:
            return set()
        cls = self.perception.registry.get(spec.kind, spec.name) if self.perception.registry is not None else None
        used = getattr(cls, "weights_used", None)
        return set(used(spec.options)) if used is not None else set()

    def get(self, which: str) -> nn.Module:
        spec = self.specs[which]
        if spec is None:
            raise MetricUnavailable(f"no {which} network configured")
        try:
            net = self.perception.require(spec)
        except WeightsNotFoundError as exc:
            first = str(exc).splitlines()
            missing = next((line.split(":", 1)[1].strip().split(" ")[0] for line in first
                            if line.startswith("Expected file:")), first[0])
            raise MetricUnavailable(f"missing: {missing}") from exc
        return net.to(self.device)

    def add_role(self, role: str, spec: NetworkSpec) -> None:
        """A network a metric brings (a judge of its own), reachable by ``get(role)`` and :meth:`identities`."""
        self.specs.setdefault(role, spec)

    def _memo(self, key: str, fn) -> _Memo:
        if key not in self._memos:
            self._memos[key] = _Memo(fn)
        return self._memos[key]

    def depth(self, images: torch.Tensor) -> torch.Tensor:
        """Inverse depth (larger = nearer) at the input size, whatever the network's own convention."""
        net = self.get("depth")

        def run(x):
            out = net.predict(x.to(self.device)).float().cpu()
            return 1.0 / out.clamp_min(1e-6) if getattr(net, "output_kind", "inverse_depth") == "depth" else out

        return self._memo("depth", run)(images)

    def edges(self, images: torch.Tensor) -> torch.Tensor:
        """HED edge probability in [0, 1]: N×1×H×W."""
        net = self.get("hed")
        return self._memo("hed", lambda x: net(x.to(self.device), ["edges"])["edges"].float().cpu())(images)

    def features(self, images: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        net = self.get("backbone")
        return self._memo(f"backbone:{','.join(layers)}",
                          lambda x: {k: v.float().cpu() for k, v in net(x.to(self.device), list(layers)).items()})(images)

    def clear(self) -> None:
        for memo in self._memos.values():
            memo.clear()


# -- depth ------------------------------------------------------------------------------------------------------
class DepthOptions(MetricOptions):
    pairs: int = Field(5000, ge=1, description="Random pixel pairs for ordinal agreement.")
    tie: float = Field(0.01, ge=0, description="Skip pairs whose normalized content inverse depths differ by less.")
    seed: int = Field(0, description="Seed of the pixel pairs (the same pairs for every model).")


class DepthPreservation(base.Metric):
    """Does the stylized image still read as the same 3-D layout to a depth network?"""

    name = "depth"
    title = "Depth preservation"
    Options = DepthOptions
    uses = ("depth",)
    columns = (
        Column("depth_rmse", "depth RMSE",
               "d = content inverse depth min–max normalized to [0, 1]; d̂ = s·D(ŷ)+t with (s, t) the per-image "
               "least-squares fit to d; RMSE = sqrt(mean((d̂ − d)²))", "depth network", "[0, 1] (0 = same depth)",
               "lower"),
        Column("depth_ordinal", "depth ordinal agreement",
               "fraction of random pixel pairs (fixed seed, 5000 pairs, near-ties |Δd| < 0.01 skipped) whose depth "
               "order in D(ŷ) equals that in D(x)", "depth network", "[0, 1] (0.5 = chance)", "higher"),
    )

    def compute(self, content, stylized, **context):
        dc, ds = self.networks.depth(content), self.networks.depth(stylized)
        o = self.options
        return {"depth_rmse": Fm.depth_rmse(dc, ds),
                "depth_ordinal": Fm.ordinal_agreement(dc, ds, o.pairs, o.seed, o.tie)}


# -- edges ------------------------------------------------------------------------------------------------------
class EdgeOptions(MetricOptions):
    threshold: float = Field(0.5, ge=0, le=1, description="HED probability at or above which a pixel is an edge.")
    thin: bool = Field(False, description="Thin binarized edges to one pixel before matching.")
    tolerance: float = Field(0.0075, gt=0, description="Matching radius as a fraction of the image diagonal (BSDS).")
    spurious_factor: float = Field(3.0, ge=1, description="Spurious edges: no content edge within this × the radius.")


def _edge_maps(networks: EvalNetworks, images: torch.Tensor, o: EdgeOptions) -> torch.Tensor:
    return Fm.binarize_edges(networks.edges(images), o.threshold, o.thin)


class EdgePreservation(base.Metric):
    """Are the content's HED edges kept, and are few new ones invented?"""

    name = "edges"
    title = "Edge preservation (HED)"
    Options = EdgeOptions
    uses = ("hed",)
    columns = (
        Column("edge_f", "edge F-score", "F = 2PR/(P+R) of E(ŷ) against E(x), E = HED 'edges' ≥ 0.5, matched within "
               "r = 0.0075·diagonal (max-pool dilation)", "HED (hed_vgg16)", "[0, 1]", "higher"),
        Column("edge_precision", "edge precision", "P = |E(ŷ) ∧ dilate_r(E(x))| / |E(ŷ)| (1 if E(ŷ) is empty)",
               "HED (hed_vgg16)", "[0, 1]", "higher"),
        Column("edge_recall", "edge recall", "R = |E(x) ∧ dilate_r(E(ŷ))| / |E(x)| (1 if E(x) is empty)",
               "HED (hed_vgg16)", "[0, 1]", "higher"),
        Column("edge_spurious", "spurious-edge ratio",
               "|E(ŷ) ∧ ¬dilate_3r(E(x))| / |E(ŷ)|: stylized edge pixels with no content edge within 3r",
               "HED (hed_vgg16)", "[0, 1]", "lower"),
    )

    def compute(self, content, stylized, **context):
        o = self.options
        ec, es = _edge_maps(self.networks, content, o), _edge_maps(self.networks, stylized, o)
        r = Fm.tolerance_radius(*content.shape[-2:], o.tolerance)
        prf = Fm.edge_prf(es, ec, r)
        return {"edge_f": prf["f"], "edge_precision": prf["precision"], "edge_recall": prf["recall"],
                "edge_spurious": Fm.spurious_ratio(es, ec, max(r, round(o.spurious_factor * r)))}


class BoundaryAgreement(base.Metric):
    """HED edges of the stylized image against BSDS500 human boundaries (union of annotators)."""

    name = "bsds"
    title = "BSDS500 boundaries"
    Options = EdgeOptions
    uses = ("hed",)
    columns = (
        Column("bsds_f", "BSDS F-score", "F of E(ŷ) against the union of the annotators' Boundaries, r = "
               "0.0075·diagonal; 'bsds_f_content' is the same for E(x), the ceiling", "HED (hed_vgg16)", "[0, 1]",
               "higher"),
        Column("bsds_precision", "BSDS precision", "|E(ŷ) ∧ dilate_r(GT)| / |E(ŷ)|", "HED (hed_vgg16)", "[0, 1]",
               "higher"),
        Column("bsds_recall", "BSDS recall", "|GT ∧ dilate_r(E(ŷ))| / |GT|", "HED (hed_vgg16)", "[0, 1]", "higher"),
    )

    def compute(self, content, stylized, *, boundaries: torch.Tensor | None = None, **context):
        n = stylized.shape[0]
        if boundaries is None:
            nan = torch.full((n,), float("nan"))
            return {c.key: nan for c in self.columns}
        o = self.options
        es = _edge_maps(self.networks, stylized, o)
        gt = boundaries.bool().reshape(n, 1, *boundaries.shape[-2:])
        if gt.shape[-2:] != es.shape[-2:]:
            gt = F.interpolate(gt.float(), size=es.shape[-2:], mode="nearest") > 0.5
        prf = Fm.edge_prf(es, gt, Fm.tolerance_radius(*es.shape[-2:], o.tolerance))
        return {"bsds_f": prf["f"], "bsds_precision": prf["precision"], "bsds_recall": prf["recall"]}


def load_bsds_boundaries(path: str | Path) -> torch.Tensor:
    """A BSDS500 ``groundTruth/*.mat`` → H×W bool, the union of every annotator's ``Boundaries``."""
    from scipy.io import loadmat

    gt = loadmat(str(path))["groundTruth"]
    union = None
    for item in gt.ravel():
        b = item["Boundaries"][0, 0] if item["Boundaries"].dtype == object else item["Boundaries"]
        b = torch.from_numpy(b.astype(bool))
        union = b if union is None else union | b
    if union is None:
        raise StylekitError(f"{path}: no annotations in groundTruth")
    return union


# -- saliency ----------------------------------------------------------------------------------------------------
class SaliencyOptions(MetricOptions):
    width: int = Field(64, ge=16, description="Width the spectral residual is computed at (Hou & Zhang: 64).")
    sigma: float = Field(2.5, gt=0, description="Gaussian blur of the saliency map, in pixels at that width.")


class SaliencyPreservation(base.Metric):
    """Does the stylized image draw the eye to the same places (Liu et al. 2017 §4.5)?"""

    name = "saliency"
    title = "Saliency preservation (spectral residual)"
    Options = SaliencyOptions
    columns = (
        Column("saliency_cc", "saliency correlation",
               "Pearson correlation of S(x) and S(ŷ); S = spectral-residual saliency (Hou & Zhang 2007) of the luma, "
               "64 px wide, blurred σ = 2.5, min–max normalized", "none (classical)", "[−1, 1]", "higher"),
        Column("saliency_mae", "saliency MAE", "mean |S(ŷ) − S(x)|", "none (classical)", "[0, 1]", "lower"),
    )

    def compute(self, content, stylized, **context):
        o = self.options
        sc = Fm.spectral_residual_saliency(content, o.width, o.sigma)
        ss = Fm.spectral_residual_saliency(stylized, o.width, o.sigma)
        return {"saliency_cc": Fm.pearson(sc, ss), "saliency_mae": (ss - sc).abs().flatten(1).mean(1)}


# -- image similarity and the training losses ------------------------------------------------------------------------
class SSIM(base.Metric):
    """Structural similarity of the luma to the content image."""

    name = "ssim"
    title = "SSIM"
    columns = (Column("ssim", "SSIM (luma)", "mean SSIM of Y = 0.299R+0.587G+0.114B (Gaussian σ = 1.5, K1 = 0.01, "
                      "K2 = 0.03, range 255; scikit-image)", "none", "[−1, 1] (1 = identical)", "higher"),)

    def compute(self, content, stylized, **context):
        return {"ssim": Fm.ssim_luminance(content, stylized)}


class ContentOptions(MetricOptions):
    layer: str = Field("relu2_2", description="Backbone layer of the content loss.")


class ContentDistance(base.Metric):
    """stylekit's content loss between the stylized and the content image."""

    name = "content"
    title = "Content loss"
    Options = ContentOptions
    uses = ("backbone",)
    judge = False
    columns = (Column("content_loss", "content loss", "‖φ(ŷ) − φ(x)‖² / (C·H·W) at relu2_2 (stylekit's `content` "
                      "term, Johnson eq. 2)", "loss backbone", "[0, ∞)", "lower"),)

    def compute(self, content, stylized, **context):
        layer = self.options.layer
        fc = self.networks.features(content, (layer,))[layer]
        fs = self.networks.features(stylized, (layer,))[layer]
        return {"content_loss": feature_reconstruction(fs, fc)}


class StyleOptions(MetricOptions):
    layers: list[str] = Field(default_factory=lambda: ["relu1_2", "relu2_2", "relu3_3", "relu4_3"],
                              description="Backbone layers whose Gram matrices are compared.")


class StyleDistance(base.Metric):
    """stylekit's style loss (Gram distance) between the stylized image and the style image, in both reductions."""

    name = "style"
    title = "Style loss"
    Options = StyleOptions
    uses = ("backbone",)
    judge = False
    columns = (
        Column("style_loss_mean", "style loss (mean)", "Σ_layers mean_{C×C}(G(φ(ŷ)) − G(φ(s)))², G = FFᵀ/(C·H·W), "
               "relu1_2…relu4_3: the `style` term's raw value with `reduction: mean` (Johnson's code; the quickstart)",
               "loss backbone", "[0, ∞)", "lower"),
        Column("style_loss_sum", "style loss (sum)", "Σ_layers ‖G(φ(ŷ)) − G(φ(s))‖²_F: the `style` term's raw value "
               "with `reduction: sum` (the papers' equation, the term's default)", "loss backbone", "[0, ∞)", "lower"),
        Column("style_loss_normalized", "style loss (layers normalized)", "Σ_layers mean_{C×C}(G(φ(ŷ)) − G(φ(s)))² / "
               "mean_{C×C} G(φ(s))²: the `style` term's raw value with `normalize_layers: true`, `reduction: mean` "
               "(every layer counts alike; the quickstart and paper_effect recipes)", "loss backbone", "[0, ∞)",
               "lower"),
    )

    def prepare(self, context: MetricContext) -> None:
        super().prepare(context)
        if context.style is None:
            raise MetricUnavailable("no style image: pass --style IMAGE, or evaluate a checkpoint whose meta.json "
                                    "names its recipe's style image")
        layers = list(self.options.layers)
        feats = self.networks.get("backbone")(context.style.to(self.networks.device), layers)
        self.targets = {k: gram_matrix(v.float().cpu()) for k, v in feats.items()}
        # divisors of the normalized column: the style Gram's mean square per layer, once per evaluation
        self.scales = {k: g.pow(2).mean().clamp_min(1e-30) for k, g in self.targets.items()}

    def compute(self, content, stylized, **context):
        fs = self.networks.features(stylized, tuple(self.options.layers))
        squared = [(gram_matrix(fs[layer]) - self.targets[layer]).pow(2) for layer in self.options.layers]
        scales = [self.scales[layer] for layer in self.options.layers]
        return {"style_loss_mean": sum(sq.mean((1, 2)) for sq in squared),
                "style_loss_sum": sum(sq.sum((1, 2)) for sq in squared),
                "style_loss_normalized": sum(sq.mean((1, 2)) / scale for sq, scale in zip(squared, scales))}


# -- learned perceptual metrics (only with their weights present) ---------------------------------------------------
LPIPS_LINEAR = WeightsFile(
    filename="vgg.pth", sha256=None, distribution="lpips", member="lpips/weights/v0.1/vgg.pth",
    license="BSD-2-Clause (lpips)",
    how_to_get="LPIPS v0.1 linear layers: `pip install --no-deps lpips==0.1.4` (ships lpips/weights/v0.1/vgg.pth) "
               "or copy that file into the weights dir as vgg.pth.")
LPIPS_BACKBONE = WeightsFile(
    filename="vgg16-397923af.pth", sha256=None, url=None, license="see torchvision",
    how_to_get="torchvision's VGG16_Weights.IMAGENET1K_V1 file (https://download.pytorch.org/models/vgg16-397923af.pth).")
FID_INCEPTION = WeightsFile(
    filename="pt_inception-2015-12-05-6726825d.pth", sha256=None, url=None,
    how_to_get="pytorch-fid's FID Inception weights (github.com/mseitzer/pytorch-fid releases).")


#: Metrics stylekit cannot compute yet, reported as not available in every evaluation: name → (the files
#: they need, why not once those are present). ArtFID (Wright & Ommer 2022) = (1 + LPIPS) · (1 + FID).
NOT_IMPLEMENTED: dict[str, tuple[tuple[WeightsFile, ...], str]] = {
    "artfid": ((FID_INCEPTION, LPIPS_LINEAR, LPIPS_BACKBONE),
               "the FID Inception network is not implemented in stylekit yet (weights found)"),
}


def not_implemented_reason(name: str) -> str:
    """Why a :data:`NOT_IMPLEMENTED` metric did not run: its missing files first, else that it is not implemented."""
    files, reason = NOT_IMPLEMENTED[name]
    try:
        _resolve_all(list(files), name)
    except MetricUnavailable as exc:
        return str(exc)
    return reason


def _resolve_all(specs: list[WeightsFile], component: str) -> list[Path]:
    """Every file's local path, or :class:`MetricUnavailable` naming all the missing ones."""
    found, missing = [], []
    for spec in specs:
        try:
            found.append(resolve_weights(spec, component=component))
        except WeightsNotFoundError:
            missing.append(spec.filename)
    if missing:
        raise MetricUnavailable(f"missing: {', '.join(missing)}")
    return found


class LPIPSNetwork(nn.Module):
    """LPIPS v0.1 with VGG-16 (Zhang et al. 2018), re-implemented: ImageNet VGG-16 taps + learned 1×1 weights."""

    SHIFT = (-0.030, -0.088, -0.188)
    SCALE = (0.458, 0.448, 0.450)
    SLICES = (4, 9, 16, 23, 30)  # ends of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in vgg16().features
    CHANNELS = (64, 128, 256, 512, 512)

    def __init__(self, backbone_state: dict[str, torch.Tensor] | None = None,
                 linear_state: dict[str, torch.Tensor] | None = None):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        self.features = make_layers(cfgs["D"])[:30]  # vgg16().features without building the classifier
        if backbone_state is not None:
            state = {k.removeprefix("features."): v for k, v in backbone_state.items() if k.startswith("features.")}
            self.features.load_state_dict({k: v for k, v in (state or backbone_state).items()
                                           if int(k.split(".")[0]) < 30})
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.CHANNELS)
        if linear_state is not None:
            for i, lin in enumerate(self.lins):
                lin.weight.data.copy_(linear_state[f"lin{i}.model.1.weight"])
        self.register_buffer("shift", torch.tensor(self.SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(self.SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def _taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images / 127.5 - 1.0 - self.shift) / self.scale
        out, start = [], 0
        for end in self.SLICES:
            x = self.features[start:end](x)
            out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
            start = end
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(a.shape[0], device=a.device)
        for lin, fa, fb in zip(self.lins, self._taps(a), self._taps(b)):
            total = total + lin((fa - fb).pow(2)).mean((1, 2, 3))
        return total


class LPIPS(base.Metric):
    """Learned perceptual distance to the content image (needs LPIPS and VGG-16 weights locally)."""

    name = "lpips"
    title = "LPIPS"
    columns = (Column("lpips", "LPIPS (VGG, v0.1)", "Σ_l mean_hw w_lᵀ(f̂_l(ŷ) − f̂_l(x))², f̂ = channel-unit-normalized "
                      "VGG-16 taps (Zhang et al. 2018)", "VGG-16 ImageNet + LPIPS linear layers", "[0, ~1]", "lower"),)

    def prepare(self, context: MetricContext) -> None:
        super().prepare(context)
        linear, backbone = _resolve_all([LPIPS_LINEAR, LPIPS_BACKBONE], "lpips")
        load = lambda p: torch.load(p, map_location="cpu", weights_only=True)  # noqa: E731
        self.net = LPIPSNetwork(load(backbone), load(linear)).to(context.device)

    def weights_used(self) -> set[str]:
        return {"torchvision VGG16_Weights.IMAGENET1K_V1", "lpips v0.1 vgg linear layers"}

    def compute(self, content, stylized, **context):
        device = self.context.device
        return {"lpips": self.net(stylized.to(device), content.to(device)).float().cpu()}


#: Built-in metrics in report order.
BUILTIN_METRICS: tuple[type[base.Metric], ...] = (DepthPreservation, EdgePreservation, BoundaryAgreement,
                                                  SaliencyPreservation, SSIM, *LOOKS_METRICS, ContentDistance,
                                                  StyleDistance, LPIPS)


def all_columns(metrics=BUILTIN_METRICS) -> list[Column]:
    return [c for m in metrics for c in m.columns]


def metrics_markdown(metrics=BUILTIN_METRICS) -> str:
    """The metrics glossary as a Markdown table (docs/metrics.md and the report share it)."""
    return columns_markdown(all_columns(metrics))


def columns_markdown(columns) -> str:
    lines = ["| metric | formula | network | range | better |", "|---|---|---|---|---|"]
    for c in columns:
        cells = [f"`{c.key}` ({c.label})", c.formula, c.network, c.range, c.better]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


@hookimpl
def stylekit_metrics():
    return list(BUILTIN_METRICS)
