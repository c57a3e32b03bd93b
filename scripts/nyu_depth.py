"""NYU Depth v2 as stored in ``shared/data`` (320×240 frames, 8-bit relative depth) and the depth scores
every depth-network table in stylekit's README uses. Shared by the ``train_*_depth_lite.py`` scripts.

Scores (per image, then averaged), the protocol of the README's depth table:
- AbsRel and δ<1.25 after a least-squares scale-and-shift of the prediction in inverse-depth space;
- ordinal agreement: on 10,000 random pixel pairs whose true depths differ by ≥ 5 %, how often the raw
  prediction orders them like the ground truth (no alignment, so a map ordered like depth instead of
  inverse depth scores ≈ 0).
Only pixels inside the Eigen crop with depth > 0 count (outside it NYU's labeled depth is in-painted borders).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

#: Eigen crop of the 480×640 frame (rows 45:471, cols 41:601), at 240×320
CROP = (22, 236, 20, 300)


def load_split(folder: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """All frames of ``folder`` (``rgb/*.jpg``, ``depth/*.png``): uint8 N×3×240×320, uint8 N×1×240×320, stems."""
    rgb_dir, depth_dir = folder / "rgb", folder / "depth"
    stems = sorted(p.stem for p in depth_dir.glob("*.png"))
    if not stems:
        raise SystemExit(f"no depth maps in {depth_dir}: point --data at a folder with rgb/ and depth/")
    rgb = torch.stack([torch.from_numpy(np.array(Image.open(rgb_dir / f"{s}.jpg").convert("RGB"))).permute(2, 0, 1)
                       for s in stems])
    depth = torch.stack([torch.from_numpy(np.array(Image.open(depth_dir / f"{s}.png"))) for s in stems])[:, None]
    return rgb, depth, stems


def test_stems(train_folder: Path) -> set[str]:
    """Stems of the standard 654-image test split, when ``eval/nyu_depth_v2/test_split_654.csv`` is beside it."""
    csv = Path(train_folder).parents[1] / "eval" / "nyu_depth_v2" / "test_split_654.csv"
    if not csv.is_file():
        return set()
    return {line.split(",")[0] for line in csv.read_text().splitlines()[1:]}


def valid_mask(depth: torch.Tensor) -> torch.Tensor:
    """True where a 240×320 depth map counts: depth > 0, inside the Eigen crop."""
    mask = depth > 0
    crop = torch.zeros_like(mask)
    r0, r1, c0, c1 = CROP
    crop[..., r0:r1, c0:c1] = True
    return mask & crop


def score(pred_inv: np.ndarray, gt: np.ndarray, mask: np.ndarray, gen: torch.Generator) -> tuple[float, float, float]:
    """AbsRel and δ<1.25 after LS scale-and-shift in inverse-depth space; ordinal order of the raw output.

    ``pred_inv``: the network's map (larger = nearer); ``gt``: relative depth in (0, 1] (larger = farther).
    """
    p, g = pred_inv[mask], 1.0 / gt[mask]
    A = np.stack([p, np.ones_like(p)], 1)
    s, t = np.linalg.lstsq(A, g, rcond=None)[0]
    aligned = np.maximum(s * p + t, 1.0)  # GT relative depth ≤ 1 ⇒ inverse depth ≥ 1
    d, gd = 1.0 / aligned, gt[mask]
    absrel = float(np.mean(np.abs(d - gd) / gd))
    delta1 = float(np.mean(np.maximum(d / gd, gd / d) < 1.25))
    idx = torch.randint(0, len(p), (2, 10000), generator=gen).numpy()
    ga, gb = gd[idx[0]], gd[idx[1]]
    keep = np.maximum(ga / gb, gb / ga) >= 1.05
    pa, pb = p[idx[0]][keep], p[idx[1]][keep]
    truth = ga[keep] < gb[keep]  # a nearer than b ⇔ larger inverse depth at a
    agree = np.where(pa == pb, 0.5, ((pa > pb) == truth).astype(float))
    return absrel, delta1, float(agree.mean()) if agree.size else 0.5


def evaluate_predictor(predict, rgb: torch.Tensor, depth: torch.Tensor, batch: int = 8,
                       baselines: bool = True) -> dict[str, dict[str, float]]:
    """Mean scores of ``predict`` (uint8→float N×3×H×W in [0, 255] → N×1×H×W inverse depth) over the frames,
    and of the constant and vertical-ramp baselines (no network at all) when ``baselines``."""
    gen = torch.Generator().manual_seed(0)
    rows = np.arange(240, dtype=np.float64)[:, None].repeat(320, 1)
    fixed = {"constant": np.ones((240, 320)), "vertical ramp": 1.0 + rows / 240} if baselines else {}
    names = ["network", *fixed]
    scores = {k: {"absrel": [], "delta1": [], "ordinal": []} for k in names}
    for i in range(0, len(rgb), batch):
        with torch.no_grad():
            preds = predict(rgb[i:i + batch].float()).double().numpy()[:, 0]
        for j in range(len(preds)):
            gt = depth[i + j, 0].double().numpy() / 255.0
            mask = valid_mask(depth[i + j, 0]).numpy()
            for name in names:
                pred = preds[j] if name == "network" else fixed[name]
                for metric, value in zip(("absrel", "delta1", "ordinal"), score(pred, gt, mask, gen)):
                    scores[name][metric].append(value)
    return {k: {m: float(np.mean(v)) for m, v in s.items()} for k, s in scores.items()}
