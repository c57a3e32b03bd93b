"""Pure tensor functions behind the evaluation metrics: no networks, so each has a known answer to test.

Images are stylekit images (N×3×H×W, RGB, [0, 255]); maps are N×1×H×W. The maths shared with training
(scale-and-shift alignment, min–max normalization) is in :mod:`stylekit.functional`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import functional as common

EPS = 1e-8


# -- depth ------------------------------------------------------------------------------------------------
def depth_rmse(content_inv: torch.Tensor, stylized_inv: torch.Tensor) -> torch.Tensor:
    """RMSE between content inverse depth normalized to [0, 1] and the aligned stylized inverse depth (N,)."""
    target = common.normalize_min_max(content_inv.double(), EPS)
    aligned = common.align_scale_shift(stylized_inv.double(), target)
    return (aligned - target).pow(2).flatten(1).mean(1).sqrt().float()


def ordinal_agreement(content_inv: torch.Tensor, stylized_inv: torch.Tensor, pairs: int = 5000, seed: int = 0,
                      tie: float = 0.01) -> torch.Tensor:
    """Fraction of random pixel pairs whose depth order is the same in both maps (N,); 1 = all kept.

    Pairs whose content values differ by less than ``tie`` (of the content range) are near-ties and are
    skipped: their order is noise. Pixel pairs are drawn with a fixed seed, so every model sees the same pairs.
    """
    n = content_inv.shape[0]
    c = common.normalize_min_max(content_inv.double(), EPS)
    c, s = c.reshape(n, -1), stylized_inv.double().reshape(n, -1)
    gen = torch.Generator().manual_seed(seed)
    i = torch.randint(0, c.shape[1], (pairs,), generator=gen)
    j = torch.randint(0, c.shape[1], (pairs,), generator=gen)
    dc, ds = c[:, i] - c[:, j], s[:, i] - s[:, j]
    valid = dc.abs() >= tie
    agree = (torch.sign(dc) == torch.sign(ds)) & valid
    count = valid.sum(1)
    return torch.where(count > 0, agree.sum(1) / count.clamp_min(1), torch.ones(n, dtype=torch.double)).float()


# -- edges --------------------------------------------------------------------------------------------------
def tolerance_radius(height: int, width: int, fraction: float = 0.0075) -> int:
    """BSDS matching tolerance: ``fraction`` of the image diagonal, at least one pixel."""
    return max(1, int(round(fraction * math.hypot(height, width))))


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation with a (2r+1)² square, via max-pooling."""
    if radius <= 0:
        return mask
    return F.max_pool2d(mask.float(), 2 * radius + 1, stride=1, padding=radius) > 0.5


def binarize_edges(prob: torch.Tensor, threshold: float = 0.5, thin: bool = False) -> torch.Tensor:
    """Edge probability → boolean map; ``thin`` reduces each edge to one pixel wide (skimage ``thin``)."""
    edges = prob >= threshold
    if thin:
        from skimage.morphology import thin as sk_thin

        edges = torch.stack([torch.from_numpy(sk_thin(e[0].cpu().numpy()))[None] for e in edges]).to(prob.device)
    return edges


def edge_prf(pred: torch.Tensor, truth: torch.Tensor, radius: int) -> dict[str, torch.Tensor]:
    """Precision, recall and F-score of boolean edge maps with a matching tolerance (each (N,)).

    precision = |pred ∧ dilate(truth)| / |pred|, recall = |truth ∧ dilate(pred)| / |truth|,
    F = 2PR / (P + R). An empty map has nothing wrong in it: empty ``pred`` → P = 1, empty ``truth`` → R = 1.
    """
    pred, truth = pred.bool(), truth.bool()
    n_pred, n_truth = pred.flatten(1).sum(1).double(), truth.flatten(1).sum(1).double()
    hit_p = (pred & dilate(truth, radius)).flatten(1).sum(1).double()
    hit_r = (truth & dilate(pred, radius)).flatten(1).sum(1).double()
    p = torch.where(n_pred > 0, hit_p / n_pred.clamp_min(1), torch.ones_like(n_pred))
    r = torch.where(n_truth > 0, hit_r / n_truth.clamp_min(1), torch.ones_like(n_truth))
    f = torch.where(p + r > 0, 2 * p * r / (p + r).clamp_min(EPS), torch.zeros_like(p))
    return {"precision": p.float(), "recall": r.float(), "f": f.float()}


def spurious_ratio(pred: torch.Tensor, truth: torch.Tensor, radius: int) -> torch.Tensor:
    """Fraction of ``pred`` edge pixels with no ``truth`` edge within ``radius`` (N,); 0 when ``pred`` is empty."""
    pred = pred.bool()
    n_pred = pred.flatten(1).sum(1).double()
    lonely = (pred & ~dilate(truth.bool(), radius)).flatten(1).sum(1).double()
    return torch.where(n_pred > 0, lonely / n_pred.clamp_min(1), torch.zeros_like(n_pred)).float()


# -- saliency -------------------------------------------------------------------------------------------------
def luminance(images: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 luma of RGB images, same range as the input: N×1×H×W."""
    w = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1))


def spectral_residual_saliency(images: torch.Tensor, width: int = 64, sigma: float = 2.5) -> torch.Tensor:
    """Spectral-residual saliency (Hou & Zhang, CVPR 2007), in [0, 1] per image, at the input size: N×1×H×W.

    Luma downscaled to ``width`` px wide; residual R = log|FFT| − 3×3 mean of log|FFT|; saliency =
    Gaussian-blurred |IFFT(exp(R + i·phase))|², min–max normalized. Classical, no weights.
    """
    h, w = images.shape[-2:]
    small_h = max(8, round(h * width / w))
    y = F.interpolate(luminance(images.double()) / 255.0, size=(small_h, width), mode="bilinear",
                      align_corners=False, antialias=True)
    spectrum = torch.fft.fft2(y)
    log_amp = torch.log(spectrum.abs() + EPS)
    phase = torch.angle(spectrum)
    avg = F.avg_pool2d(F.pad(log_amp, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    residual = log_amp - avg
    sal = torch.fft.ifft2(torch.exp(residual + 1j * phase)).abs() ** 2
    sal = _gaussian_blur(sal, sigma)
    sal = F.interpolate(sal, size=(h, w), mode="bilinear", align_corners=False)
    return common.normalize_min_max(sal, EPS).float()


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per image (N,); 1 when both maps are constant and equal, 0 when one is constant."""
    n = a.shape[0]
    x, y = a.reshape(n, -1).double(), b.reshape(n, -1).double()
    x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    sx, sy = x.pow(2).sum(1).sqrt(), y.pow(2).sum(1).sqrt()
    cc = (x * y).sum(1) / (sx * sy).clamp_min(EPS)
    both_flat = (sx < EPS) & (sy < EPS)
    return torch.where(both_flat, torch.ones_like(cc), cc).float()


# -- SSIM -----------------------------------------------------------------------------------------------------
def ssim_luminance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of the luma (Wang et al. 2004 settings: Gaussian σ=1.5, K1=0.01, K2=0.03, range 255) (N,)."""
    from skimage.metrics import structural_similarity

    la, lb = luminance(a.double()).cpu().numpy(), luminance(b.double()).cpu().numpy()
    out = []
    for x, y in zip(la[:, 0], lb[:, 0]):
        if min(x.shape) < 7:
            out.append(float(np.all(x == y)))
            continue
        out.append(structural_similarity(x, y, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False))
    return torch.tensor(out, dtype=torch.float32)


# -- texture statistics without a network ------------------------------------------------------------------
def gabor_kernels(orientations: int = 6, wavelength: float = 4.0, bandwidth: float = 0.56) -> torch.Tensor:
    """Complex Gabor filters as a real bank: (2·orientations)×1×k×k, even (cosine) then odd (sine) parts.

    Wavelength ``wavelength`` px, Gaussian envelope σ = ``bandwidth``·wavelength (one octave), orientations
    evenly spaced over 180°; each even filter has zero mean, so flat regions respond with 0.
    """
    sigma = bandwidth * wavelength
    radius = int(math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    y, x = torch.meshgrid(t, t, indexing="ij")
    envelope = torch.exp(-(x * x + y * y) / (2 * sigma * sigma))
    even, odd = [], []
    for k in range(orientations):
        theta = math.pi * k / orientations
        u = x * math.cos(theta) + y * math.sin(theta)
        e = envelope * torch.cos(2 * math.pi * u / wavelength)
        even.append(e - envelope * (e.sum() / envelope.sum()))
        odd.append(envelope * torch.sin(2 * math.pi * u / wavelength))
    bank = torch.stack(even + odd)
    bank = bank / bank.flatten(1).norm(dim=1).view(-1, 1, 1)
    return bank[:, None].float()


def gabor_texture_features(images: torch.Tensor, levels: int = 4, orientations: int = 6) -> list[torch.Tensor]:
    """A classical texture representation: per pyramid level, the magnitudes of complex Gabor responses of
    the luma (one channel per orientation) beside the level's RGB colors, all in [0, 1] units.

    Level 0 is the image; each next level is blurred and halved, so the fixed 4-px-wavelength bank sees
    wavelengths of 4, 8, 16, 32 px in the image (Portilla & Simoncelli's steerable-pyramid idea, with
    Gram matrices of the channels as the statistic, as in Gatys et al.). Returns a list of N×(O+3)×h×w.
    """
    bank = gabor_kernels(orientations).to(images.device)
    pad = bank.shape[-1] // 2
    x = images.float() / 255.0
    out = []
    for level in range(levels):
        if level:
            x = F.avg_pool2d(_gaussian_blur(x.flatten(0, 1)[:, None], 1.0).view(x.shape), 2)
        if min(x.shape[-2:]) <= pad:
            break
        luma = luminance(x)
        response = F.conv2d(F.pad(luma, (pad,) * 4, mode="reflect"), bank)
        magnitude = (response[:, :orientations] ** 2 + response[:, orientations:] ** 2).sqrt()
        out.append(torch.cat([magnitude, x], 1))
    return out


# -- artifacts ------------------------------------------------------------------------------------------------
def bright_blobs(content: torch.Tensor, stylized: torch.Tensor, *, level: float = 235.0, flat: float = 3.0,
                 min_area: float = 2e-4, max_area: float = 0.05, window: int = 5,
                 flat_share: float = 0.3) -> dict[str, torch.Tensor]:
    """Isolated, flat, blown-out white spots in ŷ that the content does not have: ``count`` and ``area`` (N,).

    The instance-norm "droplet" failure (Karras et al. 2020, StyleGAN2 §2): a network that normalizes each
    feature map per image learns a strong local peak to carry signal past the normalization; through the
    decoder it shows as a round, textureless patch at the tanh's white end. A pixel is *blown out* when its
    darkest channel is at least ``level``. A spot is a connected (8-neighbor) group of blown-out pixels of
    ŷ, none of which is blown out in the content (±2 px), covering ``min_area`` to ``max_area`` of the image
    (at least 16 pixels; larger white areas are a style's own paper), at least ``flat_share`` of whose
    pixels are flat (luma standard deviation ≤ ``flat`` in a ``window``² box; white strokes with texture are
    not). ``count``: spots per image; ``area``: the fraction of the image they cover. Classical (no
    network): 0 for the content itself, by construction.
    """
    from scipy import ndimage

    counts, areas = [], []
    for c, s in zip(content.double().cpu(), stylized.double().cpu()):
        blown = _blown_out(s, level) & ~ndimage.binary_dilation(_blown_out(c, level), iterations=2)
        labels, n = ndimage.label(blown, structure=np.ones((3, 3)))
        pixels = blown.size
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        flat_pixels = np.bincount(labels.ravel(), weights=_flat(s, flat, window).ravel(), minlength=n + 1)[1:]
        keep = ((sizes >= max(16.0, min_area * pixels)) & (sizes <= max_area * pixels)
                & (flat_pixels >= flat_share * np.maximum(sizes, 1)))
        counts.append(float(keep.sum()))
        areas.append(float(sizes[keep].sum()) / pixels)
    return {"count": torch.tensor(counts, dtype=torch.float32), "area": torch.tensor(areas, dtype=torch.float32)}


def _blown_out(image: torch.Tensor, level: float) -> np.ndarray:
    """H×W bool: the darkest channel is at least ``level``."""
    return (image.min(0).values >= level).numpy()


def _flat(image: torch.Tensor, flat: float, window: int) -> np.ndarray:
    """H×W float 0/1: the luma's standard deviation in a ``window``² box is at most ``flat``."""
    y = luminance(image[None])
    pad = window // 2
    box = lambda t: F.avg_pool2d(F.pad(t, (pad,) * 4, mode="replicate"), window, stride=1)  # noqa: E731
    std = (box(y * y) - box(y).pow(2)).clamp_min(0).sqrt()
    return (std[0, 0] <= flat).double().numpy()


# -- statistics -----------------------------------------------------------------------------------------------
def bootstrap_mean_ci(values: np.ndarray, resamples: int = 1000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float]:
    """BCa bootstrap CI of the mean over images (NaNs dropped), ``scipy.stats.bootstrap``; fixed seed → reproducible."""
    values = np.asarray(values, dtype=float)
    return _bca((values[np.isfinite(values)],), np.mean, resamples, level, seed)


def paired_bootstrap_ci(baseline: np.ndarray, candidate: np.ndarray, resamples: int = 1000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """BCa bootstrap CI of the mean paired difference candidate − baseline: images are resampled, each keeping its
    pair (``paired=True``); images missing from either side are dropped."""
    a, b = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)

    def mean_difference(x, y, axis=-1):
        return np.mean(y - x, axis=axis)

    return _bca((a[ok], b[ok]), mean_difference, resamples, level, seed, paired=True)


def _bca(data: tuple[np.ndarray, ...], statistic, resamples: int, level: float, seed: int,
         paired: bool = False) -> tuple[float, float]:
    """Efron's bias-corrected and accelerated interval. Where BCa is undefined: every value equal (to rounding)
    or one image → the value itself; a degenerate resample → the percentile interval of the same resamples."""
    import warnings

    from scipy import stats

    n = data[0].size
    if n == 0:
        return float("nan"), float("nan")
    point = float(statistic(*data, axis=-1))
    spread = np.ptp(data[1] - data[0]) if paired else np.ptp(data[0])
    if n == 1 or spread <= 1e-12 * max(1.0, abs(point)):
        return point, point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns when a degenerate resample makes BCa undefined
        result = stats.bootstrap(data, statistic, n_resamples=resamples, confidence_level=level, method="BCa",
                                 paired=paired, vectorized=True, rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    if not (np.isfinite(low) and np.isfinite(high)):
        alpha = (1 - level) / 2
        low, high = np.quantile(result.bootstrap_distribution, [alpha, 1 - alpha])
    return float(low), float(high)
