"""The hierarchical bootstrap for runs × images: seeds resampled within each configuration, images shared.

A *configuration* (an arm's setting: a recipe with its weights) is trained with S_k seeds, and every run is scored
on the same I content images: its values are an S_k × I array. What a study reports is each configuration's
mean over seeds and images, and functions of those means (a difference, a gap to a frontier). Two sources of
chance move them: which images were drawn, and which seeds. An image-only bootstrap sees the first alone, and
with seeds that move a metric as much as the effect (docs/paper.md) its intervals are far too narrow.

Each replicate draws (:class:`HierarchicalBootstrap`):

- one resample of the images, shared by every configuration, so comparisons stay paired on images;
- independently for each configuration, S_k of its runs with replacement. Seeds and images are crossed (every
  run sees every image), so this is Owen's (2007) pigeonhole bootstrap, which resamples both factors of a
  crossed design (slightly conservative: the seed × image interaction counts twice), the two-stage scheme of
  Davison & Hinkley (1997, §3.8) and Saravanan et al. (2020, "Application of the hierarchical bootstrap to
  multi-level data in neuroscience"). Each run's deviation from its configuration's mean run is inflated by
  √(S_k/(S_k − 1)), so the resampled seed mean has the unbiased variance s²/S_k rather than
  (S_k − 1)/S_k of it (D&H §3.8's adjustment; with 3 seeds a third of the variance is otherwise lost).
- A configuration with one run has no seed variation of its own: it borrows the deviations of its arm's
  configurations with several seeds (else of every such configuration), i.e. it assumes seeds move each
  configuration alike. With none to borrow, its seed variation is unknown and intervals that involve it say so.

The interval is θ̂ ± t_ν·SE, SE the replicates' standard deviation and ν Satterthwaite's (1946) degrees of freedom
of the variance's parts (images: I − 1; the seeds of configuration k: S_k − 1), each part measured by resampling
that factor alone. With three seeds the seed part has two degrees of freedom: percentiles of a bootstrap
distribution (z quantiles of a distribution with ten distinct seed draws) would cover far less than 95 %
(Hesterberg 2015, "What teachers should know about the bootstrap", on small samples); the t quantile keeps the
nominal coverage (tests/test_claim_statistics.py checks it on simulated data with known seed variance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

#: where a configuration's seed deviations come from
OWN, ARM, ALL, NONE = "own seeds", "borrowed from its arm", "borrowed from every arm", "unknown (one run)"


@dataclass(frozen=True)
class Interval:
    """An estimate with its hierarchical-bootstrap CI."""

    estimate: float
    low: float
    high: float
    se: float
    df: float
    #: configurations whose seed variation could not be measured (the CI then covers the images only)
    unknown_seeds: tuple[int, ...] = ()

    def excludes(self, value: float = 0.0) -> bool:
        return math.isfinite(self.low) and (self.low > value or self.high < value)


class HierarchicalBootstrap:
    """Replicates of every configuration's mean over seeds and images (see the module docstring).

    ``values[k]``: configuration k's S_k × I × M array (runs × images × quantities, e.g. M = 2 for a style
    distance and a depth score), the same I images in the same order for every k and no NaN; ``arms[k]``: the
    arm it belongs to, whose other configurations lend it seed deviations when it has one run.
    """

    def __init__(self, values: Sequence[np.ndarray], arms: Sequence[str], resamples: int = 1000, seed: int = 0):
        self.values = [np.asarray(v, dtype=float) for v in values]
        if not self.values or any(v.ndim != 3 for v in self.values):
            raise ValueError("values: one runs × images × quantities array per configuration")
        self.images = self.values[0].shape[1]
        if any(v.shape[1:] != self.values[0].shape[1:] for v in self.values):
            raise ValueError("every configuration needs the same images and quantities")
        self.arms = list(arms)
        self.resamples = int(resamples)
        self.per_image = [v.mean(0) for v in self.values]  # I × M: the configuration's mean run
        self.point = np.stack([m.mean(0) for m in self.per_image])  # K × M
        self.pools, self.sources, self.seed_df = self._pools()
        rng = np.random.default_rng(seed)
        n = self.images
        self.image_counts = rng.multinomial(n, np.full(n, 1.0 / n), size=self.resamples).astype(float)
        self.seed_counts = [rng.multinomial(len(v), np.full(len(p), 1.0 / len(p)), size=self.resamples).astype(float)
                            if len(p) else np.zeros((self.resamples, 0)) for v, p in zip(self.values, self.pools)]
        self._cache: dict[object, np.ndarray] = {}

    def _pools(self) -> tuple[list[np.ndarray], list[str], list[float]]:
        """Per configuration: the deviations its seeds are drawn from, where they come from, their df."""
        own = [math.sqrt(len(v) / (len(v) - 1)) * (v - v.mean(0)) if len(v) > 1 else None for v in self.values]
        pools, sources, dfs = [], [], []
        for k, v in enumerate(self.values):
            if own[k] is not None:
                pools.append(own[k])
                sources.append(OWN)
                dfs.append(len(v) - 1.0)
                continue
            for source, members in ((ARM, [j for j in range(len(own)) if self.arms[j] == self.arms[k]]),
                                    (ALL, list(range(len(own))))):
                lenders = [j for j in members if own[j] is not None]
                if lenders:
                    pools.append(np.concatenate([own[j] for j in lenders]))
                    sources.append(source)
                    dfs.append(float(sum(len(self.values[j]) - 1 for j in lenders)))
                    break
            else:
                pools.append(np.zeros((0, *v.shape[1:])))
                sources.append(NONE)
                dfs.append(math.inf)
        return pools, sources, dfs

    def replicates(self, vary: str | int = "all") -> np.ndarray:
        """B × K × M replicate means; ``vary``: 'all', 'images' (seeds as observed) or a configuration's index
        (only its seeds resampled, images as observed)."""
        if vary in self._cache:
            return self._cache[vary]
        b, n = self.resamples, self.images
        weights = self.image_counts if vary in ("all", "images") else np.ones((b, n))
        out = []
        for k, (mean_run, pool, counts) in enumerate(zip(self.per_image, self.pools, self.seed_counts)):
            runs = np.broadcast_to(mean_run, (b, *mean_run.shape))
            if (vary == "all" or vary == k) and len(pool):
                shift = (counts @ pool.reshape(len(pool), -1)).reshape(b, *mean_run.shape) / len(self.values[k])
                runs = runs + shift
            out.append(np.einsum("bi,bim->bm", weights, runs) / n)
        self._cache[vary] = result = np.stack(out, axis=1)
        return result

    def interval(self, statistic: Callable[[np.ndarray], np.ndarray], involves: Sequence[int] | None = None,
                 level: float = 0.95) -> Interval:
        """CI of ``statistic`` (K × M means → a number, vectorized over leading axes) of the configurations
        ``involves`` (default all): θ̂ ± t_ν·SE (module docstring). Replicates where it is NaN are left out."""
        from scipy import stats

        involves = range(len(self.values)) if involves is None else involves
        estimate = float(statistic(self.point))
        replicates = statistic(self.replicates("all"))
        finite = replicates[np.isfinite(replicates)]
        if not math.isfinite(estimate) or finite.size < 2:
            return Interval(estimate, math.nan, math.nan, math.nan, math.nan)
        se = float(finite.std(ddof=1))
        parts = [(_variance(statistic(self.replicates("images"))), self.images - 1.0)]
        parts += [(_variance(statistic(self.replicates(k))), self.seed_df[k]) for k in involves
                  if self.sources[k] != NONE]
        total = sum(v for v, _ in parts)
        denominator = sum(v * v / df for v, df in parts if df > 0 and math.isfinite(df))
        df = total * total / denominator if denominator > 0 else math.inf
        half = float(stats.t.ppf(0.5 + level / 2, df)) * se if math.isfinite(df) else float(stats.norm.ppf(
            0.5 + level / 2)) * se
        unknown = tuple(k for k in involves if self.sources[k] == NONE)
        return Interval(estimate, estimate - half, estimate + half, se, df, unknown)


def _variance(replicates: np.ndarray) -> float:
    finite = replicates[np.isfinite(replicates)]
    return float(finite.var(ddof=1)) if finite.size > 1 else 0.0


# -- the frontier -----------------------------------------------------------------------------------------------
def interpolate(xs: np.ndarray, ys: np.ndarray, x: np.ndarray,
                slopes: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The piecewise-linear curve through the points (xs, ys) (each row sorted by x here) at ``x``, extended
    linearly past its ends; and whether ``x`` lies inside the points' range. Vectorized over leading axes:
    ``xs``, ``ys``: (..., P); ``x``: (...).

    ``slopes`` (below the lowest x, above the highest; :func:`end_slopes`): the slopes to extend with, instead of each row's own
    end segments. A bootstrap replicate's end segment can be nearly vertical when two points' x almost coincide
    there, and extending it would put the curve anywhere; fixed slopes (the point estimate's) keep it bounded."""
    order = np.argsort(xs, axis=-1)
    xs, ys = np.take_along_axis(xs, order, -1), np.take_along_axis(ys, order, -1)
    points = xs.shape[-1]
    upper = np.clip((xs <= x[..., None]).sum(-1), 1, points - 1)[..., None]
    x0, x1 = np.take_along_axis(xs, upper - 1, -1)[..., 0], np.take_along_axis(xs, upper, -1)[..., 0]
    y0, y1 = np.take_along_axis(ys, upper - 1, -1)[..., 0], np.take_along_axis(ys, upper, -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(x1 > x0, (x - x0) / (x1 - x0), 0.5)
    inside = (x >= xs[..., 0]) & (x <= xs[..., -1])
    curve = y0 + t * (y1 - y0)
    if slopes is not None:
        curve = np.where(x < xs[..., 0], ys[..., 0] + slopes[0] * (x - xs[..., 0]), curve)
        curve = np.where(x > xs[..., -1], ys[..., -1] + slopes[1] * (x - xs[..., -1]), curve)
    return curve, inside


def end_slopes(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
    """The slopes of the first and last segments of the curve through (xs, ys), sorted by x (0 where two x
    coincide): the extension :func:`interpolate` uses past the ends in every replicate."""
    order = np.argsort(xs)
    xs, ys = np.asarray(xs, float)[order], np.asarray(ys, float)[order]

    def slope(i: int, j: int) -> float:
        return float((ys[j] - ys[i]) / (xs[j] - xs[i])) if xs[j] > xs[i] else 0.0

    return slope(0, 1), slope(-2, -1)


def frontier_gap(reference: Sequence[int], candidate: int, x: int = 0, y: int = 1,
                 sign: float = 1.0, slopes: tuple[float, float] | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The statistic 'candidate's y minus the reference configurations' curve at the candidate's x' (times
    ``sign``: −1 when lower y is better, so a positive gap always means better), for
    :meth:`HierarchicalBootstrap.interval`; ``slopes``: the curve's extension past its ends (:func:`end_slopes`
    of the point estimate), the same in every replicate."""
    reference = list(reference)

    def gap(means: np.ndarray) -> np.ndarray:
        curve, _ = interpolate(means[..., reference, x], means[..., reference, y], means[..., candidate, x],
                               slopes=slopes)
        return sign * (means[..., candidate, y] - curve)

    return gap


def inside_range(means: np.ndarray, reference: Sequence[int], candidate: int, x: int = 0) -> np.ndarray:
    """Whether the candidate's x lies within the reference configurations' x range (per replicate)."""
    xs = means[..., list(reference), x]
    value = means[..., candidate, x]
    return (value >= xs.min(-1)) & (value <= xs.max(-1))
