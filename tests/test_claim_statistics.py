"""The hierarchical bootstrap and the frontier verdict against simulated studies whose truth is known.

Every simulation draws runs × images values from a two-level model, value = μ + seed effect + image effect +
noise, with a known seed variance, and checks what a user relies on: the 95 % CI covers the truth about 95 % of
the time (with 3 seeds too), it is wider than an image-only bootstrap when seeds vary (which then covers far
less), comparisons are paired on images, and the frontier gap finds an arm above a known line and says
'outside the range' rather than extrapolating. Fixed seeds: the results are the same on every run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stylekit.evaluate import functional as Fm
from stylekit.evaluate.frontier import tradeoff
from stylekit.evaluate.groups import Group, compare_groups, summarize_groups, verdict
from stylekit.evaluate.hierarchical import ALL, ARM, NONE, OWN, HierarchicalBootstrap, frontier_gap, interpolate
from stylekit.evaluate.runner import EvalResult
from stylekit.metrics import Column


def two_level(rng, seeds: int, images: int, mean=0.5, seed_sd=0.03, image_sd=0.05, noise_sd=0.05,
              image_effects=None) -> np.ndarray:
    """seeds × images values: mean + seed effect + image effect + noise."""
    image_effects = rng.normal(0, image_sd, (1, images)) if image_effects is None else image_effects
    return mean + rng.normal(0, seed_sd, (seeds, 1)) + image_effects + rng.normal(0, noise_sd, (seeds, images))


def coverage_of_mean(seeds: int, seed_sd: float, reps: int = 200, images: int = 40):
    """Share of simulated studies whose CI covers the true mean 0.5: hierarchical, and image-only (the seeds'
    mean per image, bootstrapped over images as the two-model comparison does); and the mean CI widths."""
    rng = np.random.default_rng(seeds * 1000 + int(seed_sd * 1e4))
    hits = image_hits = 0
    widths, image_widths = [], []
    for rep in range(reps):
        y = two_level(rng, seeds, images, seed_sd=seed_sd)
        interval = HierarchicalBootstrap([y[..., None]], ["arm"], 300, seed=rep).interval(lambda m: m[..., 0, 0])
        hits += interval.low <= 0.5 <= interval.high
        widths.append(interval.high - interval.low)
        low, high = Fm.bootstrap_mean_ci(y.mean(0), 200, seed=rep)
        image_hits += low <= 0.5 <= high
        image_widths.append(high - low)
    return hits / reps, image_hits / reps, float(np.mean(widths)), float(np.mean(image_widths))


@pytest.mark.parametrize("seeds", [3, 5])
def test_ci_covers_the_true_mean_at_the_nominal_rate_when_seeds_vary(seeds):
    covered, image_only, width, image_width = coverage_of_mean(seeds, seed_sd=0.03)
    assert 0.90 <= covered <= 0.99, covered
    assert image_only < 0.80, image_only  # an image-only bootstrap ignores the seeds and covers far too rarely
    assert width > 1.5 * image_width


def test_without_seed_variation_the_ci_stays_close_to_the_image_only_one():
    covered, image_only, width, image_width = coverage_of_mean(5, seed_sd=0.0)
    assert covered >= 0.93  # never liberal; the pigeonhole bootstrap counts the noise twice: slightly conservative
    assert image_only >= 0.88
    assert width < 1.6 * image_width


def test_seed_deviations_are_inflated_to_the_unbiased_variance():
    """Two configurations: the seeds-only replicates of a 3-seed mean have variance s²/3 (not (2/3)·s²/3)."""
    rng = np.random.default_rng(0)
    y = two_level(rng, 3, 30, noise_sd=0.0, image_sd=0.0, seed_sd=0.1)
    boot = HierarchicalBootstrap([y[..., None]], ["a"], 20000, seed=1)
    seed_means = y.mean(1)
    expected = seed_means.var(ddof=1) / 3
    assert boot.replicates(0)[:, 0, 0].var() == pytest.approx(expected, rel=0.05)
    assert boot.sources == [OWN] and boot.seed_df == [2.0]


def test_differences_are_paired_on_images_and_cover_the_true_difference():
    rng = np.random.default_rng(7)
    reps, hits, paired, unpaired = 200, 0, [], []
    for rep in range(reps):
        images = rng.normal(0, 0.15, (1, 40))  # large image effects, shared by both configurations
        a = two_level(rng, 3, 40, mean=0.50, seed_sd=0.01, image_effects=images)
        b = two_level(rng, 3, 40, mean=0.52, seed_sd=0.01, image_effects=images)
        boot = HierarchicalBootstrap([a[..., None], b[..., None]], ["x", "y"], 300, seed=rep)
        interval = boot.interval(lambda m: m[..., 1, 0] - m[..., 0, 0])
        hits += interval.low <= 0.02 <= interval.high
        paired.append(interval.se)
        shuffled = HierarchicalBootstrap([a[..., None], b[:, rng.permutation(40), None]], ["x", "y"], 300, seed=rep)
        unpaired.append(shuffled.interval(lambda m: m[..., 1, 0] - m[..., 0, 0]).se)
    assert 0.90 <= hits / reps <= 0.99
    assert np.mean(paired) < 0.6 * np.mean(unpaired)  # pairing removes the shared image effects


def test_a_single_run_borrows_seed_variation_from_its_arm_or_says_it_is_unknown():
    rng = np.random.default_rng(3)
    reps, hits = 200, 0
    for rep in range(reps):
        images = rng.normal(0, 0.05, (1, 40))
        arm = [two_level(rng, 3, 40, image_effects=images) for _ in range(2)]
        single = two_level(rng, 1, 40, image_effects=images)
        boot = HierarchicalBootstrap([*(v[..., None] for v in arm), single[..., None]], ["j", "j", "j"], 300, seed=rep)
        interval = boot.interval(lambda m: m[..., 2, 0], [2])
        hits += interval.low <= 0.5 <= interval.high
    assert boot.sources == [OWN, OWN, ARM] and boot.seed_df[2] == 4.0
    assert 0.90 <= hits / reps <= 0.99
    alone = HierarchicalBootstrap([single[..., None], arm[0][..., None]], ["k", "j"], 200, seed=0)
    assert alone.sources == [ALL, OWN]  # nothing in its own arm: borrowed from every arm's seeds
    nothing = HierarchicalBootstrap([single[..., None], single[..., None] + 0.01], ["k", "j"], 200, seed=0)
    interval = nothing.interval(lambda m: m[..., 1, 0] - m[..., 0, 0])
    assert nothing.sources == [NONE, NONE] and interval.unknown_seeds == (0, 1)
    assert verdict(interval, "higher") == "n/a"  # images alone would call +0.01 'better': no verdict instead


def test_interpolate_is_the_piecewise_linear_curve_extended_past_its_ends():
    xs, ys = np.array([3.0, 1.0, 2.0]), np.array([0.7, 0.9, 0.8])  # unsorted on purpose: y = 1 − 0.1·x
    for x, expected, inside in [(1.5, 0.85, True), (2.0, 0.8, True), (3.0, 0.7, True), (4.0, 0.6, False),
                                (0.0, 1.0, False)]:
        value, is_inside = interpolate(xs, ys, np.array(x))
        assert float(value) == pytest.approx(expected) and bool(is_inside) == inside
    kinked = interpolate(np.array([[0.0, 1.0, 2.0]]), np.array([[0.0, 1.0, 0.0]]), np.array([1.5]))[0]
    assert kinked[0] == pytest.approx(0.5)

    fixed = interpolate(np.array([[1.0, 1.001, 2.0]]), np.array([[0.9, 0.5, 0.8]]), np.array([0.5]), slopes=(-0.1, -0.1))
    assert fixed[0][0] == pytest.approx(0.95)  # past the end: the given slope, not the near-vertical end segment


def test_two_nearly_equally_stylized_reference_configurations_keep_the_gap_ci_bounded():
    """The claim experiment's case: the reference arm's two most stylized configurations almost share their x
    but not their y, one of them with one seed; a candidate on the line near that end. The gap CI stays of the
    size of the y noise, and the candidate is not called above or below."""
    rng = np.random.default_rng(8)
    image_effects = rng.normal(0, [0.3, 0.05], (1, 40, 2))

    def configuration(x, y, seeds=3):
        return (np.array([x, y]) + rng.normal(0, [0.15, 0.02], (seeds, 1, 2)) + image_effects
                + rng.normal(0, [0.2, 0.03], (seeds, 40, 2)))

    line = {("johnson", "c05"): configuration(1.0, 0.60, seeds=1), ("johnson", "c1"): configuration(1.05, 0.68),
            ("johnson", "c2"): configuration(2.0, 0.74), ("johnson", "c4"): configuration(3.0, 0.78),
            ("depth", "w50"): configuration(1.1, 0.684)}
    result, groups = study_result(line)
    gap = tradeoff(result, groups, "texture_gabor", "depth_ordinal", resamples=400)["gaps"][0]
    assert gap["ci_high"] - gap["ci_low"] < 0.3 and gap["verdict"] in ("not shown", "outside the range")


def frontier_study(rng, delta: float, candidate_x: float = 2.5, seeds: int = 3, images: int = 40) -> list[np.ndarray]:
    """Three reference configurations on y = 1 − 0.1·x at x = 1, 2, 3 and a candidate δ above the line; seeds
    move x and y, images too (shared)."""
    image_effects = rng.normal(0, [0.3, 0.05], (1, images, 2))

    def configuration(x, y):
        return (np.array([x, y]) + rng.normal(0, [0.15, 0.02], (seeds, 1, 2)) + image_effects
                + rng.normal(0, [0.2, 0.03], (seeds, images, 2)))

    return [configuration(x, 1 - 0.1 * x) for x in (1, 2, 3)] + [configuration(candidate_x, 1 - 0.1 * candidate_x
                                                                                + delta)]


@pytest.mark.parametrize("delta, coverage_band, above_band", [(0.0, (0.90, 0.99), (0.0, 0.06)),
                                                              (0.1, (0.90, 0.99), (0.8, 1.0))])
def test_frontier_gap_ci_covers_the_true_gap_and_finds_an_arm_above(delta, coverage_band, above_band):
    rng = np.random.default_rng(11)
    reps, hits, above = 150, 0, 0
    for rep in range(reps):
        boot = HierarchicalBootstrap(frontier_study(rng, delta), ["j", "j", "j", "d"], 300, seed=rep)
        interval = boot.interval(frontier_gap([0, 1, 2], 3))
        hits += interval.low <= delta <= interval.high
        above += interval.low > 0
    assert coverage_band[0] <= hits / reps <= coverage_band[1]
    assert above_band[0] <= above / reps <= above_band[1]


# -- the same through evaluate's groups ------------------------------------------------------------------------
def study_result(configs: dict[tuple[str, str], np.ndarray], keys=("texture_gabor", "depth_ordinal"),
                 better=("lower", "higher")) -> tuple[EvalResult, list[Group]]:
    """An EvalResult as `stylekit evaluate` returns it, from runs × images × keys arrays per (arm, config)."""
    images = [f"img{i}" for i in range(next(iter(configs.values())).shape[1])]
    rows, groups = [], []
    for (arm, config), values in configs.items():
        group = Group(arm, config)
        for seed, run in enumerate(values):
            source = f"{arm}-{config}-s{seed}"
            group.paths.append(source)
            group.sources.append(source)
            rows += [{"source": source, "image": image, **{k: float(v) for k, v in zip(keys, run[i])}}
                     for i, image in enumerate(images)]
        groups.append(group)
    columns = [Column(k, k, "", "", "", b) for k, b in zip(keys, better)]
    result = EvalResult([s for g in groups for s in g.sources], images, columns, rows, {}, [], {})
    return result, groups


def test_tradeoff_verdicts_above_not_shown_and_outside_the_range():
    rng = np.random.default_rng(5)
    reference = frontier_study(rng, 0.0)[:3]
    configs = {("johnson", f"cw{i}"): v for i, v in enumerate(reference)}
    far_above = frontier_study(rng, 0.2)[3]
    on_line = frontier_study(rng, 0.0)[3]
    outside = frontier_study(rng, 0.0, candidate_x=6.0)[3]
    result, groups = study_result({**configs, ("depth", "w5"): far_above, ("depth", "w1"): on_line,
                                   ("wide", "w9"): outside})
    trade = tradeoff(result, groups, "texture_gabor", "depth_ordinal", resamples=400)
    gaps = {g["group"]: g for g in trade["gaps"]}
    assert gaps["depth/w5"]["verdict"] == "above" and gaps["depth/w5"]["gap"] == pytest.approx(0.2, abs=0.05)
    assert gaps["depth/w1"]["verdict"] == "not shown"
    assert gaps["wide/w9"]["verdict"] == "outside the range" and not gaps["wide/w9"]["inside"]
    arms = {a["arm"]: a for a in trade["arm_verdicts"]}
    assert arms["depth"]["configs_inside"] == 2 and arms["wide"]["verdict"] == "outside the range"
    assert "depth arm" in trade["sentence"] and "extrapolation is not one" in trade["sentence"]
    assert trade["reference_arm"] == "johnson" and len(trade["runs"]) == 18 and len(trade["configs"]) == 6


@pytest.mark.parametrize("delta, expected", [(0.2, "above"), (-0.2, "below")])
def test_tradeoff_reads_a_lower_is_better_y_so_that_above_means_better(delta, expected):
    rng = np.random.default_rng(6)
    # y → −y: lower is now better, so a candidate δ > 0 above the line in y is δ below it in −y: better
    flipped = [v * np.array([1.0, -1.0]) for v in frontier_study(rng, delta)]
    result, groups = study_result({("j", "a"): flipped[0], ("j", "b"): flipped[1], ("j", "c"): flipped[2],
                                   ("d", "w"): flipped[3]}, keys=("texture_gabor", "depth_rmse"),
                                  better=("lower", "lower"))
    trade = tradeoff(result, groups, "texture_gabor", "depth_rmse", resamples=300)
    assert trade["gaps"][0]["verdict"] == expected
    assert trade["gaps"][0]["gap"] == pytest.approx(delta, abs=0.06)  # positive gap = better, whatever the direction


def test_a_frontier_needs_two_configurations():
    rng = np.random.default_rng(8)
    study = frontier_study(rng, 0.1)
    result, groups = study_result({("j", ""): study[0], ("d", ""): study[3]})
    trade = tradeoff(result, groups, "texture_gabor", "depth_ordinal", resamples=200)
    assert not trade["gaps"] and "a frontier needs two or more" in trade["sentence"]


def test_group_summaries_and_differences_with_known_effects():
    rng = np.random.default_rng(9)
    images = rng.normal(0, [0.3, 0.05], (1, 40, 2))
    base = np.array([2.0, 0.5]) + images + rng.normal(0, [0.05, 0.005], (3, 40, 2))
    better = base + np.array([0.0, 0.05])  # same style, clearly better depth
    result, groups = study_result({("a", ""): base, ("b", ""): better})
    summary = summarize_groups(result, groups, 300)
    assert summary["a"]["depth_ordinal"]["seeds"] == 3 and summary["a"]["depth_ordinal"]["n"] == 40
    s = summary["b"]["depth_ordinal"]
    assert s["ci_low"] < s["mean"] < s["ci_high"] and math.isfinite(s["df"]) and s["seed_variation"] == OWN
    rows = {r["metric"]: r for r in compare_groups(result, groups, "a", 300)}
    assert rows["depth_ordinal"]["verdict"] == "better" and rows["depth_ordinal"]["diff"] == pytest.approx(0.05)
    assert rows["texture_gabor"]["verdict"] == "no clear difference"
    assert rows["depth_ordinal"]["relative"] == pytest.approx(0.1, abs=0.01)  # +0.05 on 0.5
    assert rows["depth_ordinal"]["relative_ci_low"] < 0.1 < rows["depth_ordinal"]["relative_ci_high"]
