"""Train and evaluate ``hed_depth_lite`` (stylekit's small relative-depth head on frozen HED VGG-16).

Reproducible recipe (CPU is enough; bf16 autocast where the CPU supports it):

    python scripts/train_hed_depth_lite.py train --data ../shared/data/depth_train/nyu_depth_v2 \
        --steps 1500 --out stylekit/depth/weights/hed_depth_lite.safetensors
    python scripts/train_hed_depth_lite.py eval --data ../shared/data/eval/nyu_depth_v2 \
        --weights stylekit/depth/weights/hed_depth_lite.safetensors

Data: NYU Depth v2 labeled frames at 320×240, depth PNGs ``uint8(depth / max(depth) * 255)`` per image
(relative, larger = farther, 0 = missing). Targets are inverse depth divided by its median over the
valid pixels of the crop. Loss per image (Ranftl et al.'s MiDaS recipe): scale-and-shift-invariant
MSE after closed-form least-squares alignment, plus 0.5 × a 4-scale gradient-matching term on the
aligned residual, plus a decaying L1 "anchor" to the raw target that fixes the sign of the scale
(the LS term alone cannot tell an output ordered like depth from one ordered like inverse depth).
Only pixels inside the Eigen crop count (outside it NYU's labeled depth is in-painted borders).
The encoder is frozen, so its features are computed once and cached (about 7 GB of float16 on disk);
augmentation is random 192×256 crops of the cached maps.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylekit.depth.hed_depth_lite import ENCODER_TAPS, HedDepthLite
from stylekit.depth.maps import least_squares_align
from stylekit.runtime import autocast, pick_precision

# Eigen crop of the 480×640 frame (rows 45:471, cols 41:601), at 240×320
CROP = (22, 236, 20, 300)


def load_split(folder: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    rgb_dir, depth_dir = folder / "rgb", folder / "depth"
    stems = sorted(p.stem for p in depth_dir.glob("*.png"))
    rgb = torch.stack([torch.from_numpy(np.asarray(Image.open(rgb_dir / f"{s}.jpg").convert("RGB"))).permute(2, 0, 1)
                       for s in stems])
    depth = torch.stack([torch.from_numpy(np.asarray(Image.open(depth_dir / f"{s}.png"))) for s in stems])[:, None]
    return rgb, depth, stems


def valid_mask(depth: torch.Tensor) -> torch.Tensor:
    mask = depth > 0
    crop = torch.zeros_like(mask)
    r0, r1, c0, c1 = CROP
    crop[..., r0:r1, c0:c1] = True
    return mask & crop


def gradient_loss(residual: torch.Tensor, mask: torch.Tensor, scales: int = 4) -> torch.Tensor:
    total = 0.0
    for k in range(scales):
        r, m = residual[..., :: 2**k, :: 2**k], mask[..., :: 2**k, :: 2**k].float()
        gx = (r[..., :, 1:] - r[..., :, :-1]).abs() * m[..., :, 1:] * m[..., :, :-1]
        gy = (r[..., 1:, :] - r[..., :-1, :]).abs() * m[..., 1:, :] * m[..., :-1, :]
        total = total + (gx.sum((1, 2, 3)) + gy.sum((1, 2, 3))) / m.sum((1, 2, 3)).clamp_min(1)
    return total / scales


def encode_cache(rgb: torch.Tensor, net: HedDepthLite, folder: Path, dtype: torch.dtype) -> list[np.memmap]:
    """Frozen-encoder features of every training frame (320×240), cached as float16 memory maps.

    The encoder is frozen, so computing it once (instead of every step) makes training ~20× cheaper.
    The price: augmentation is limited to random crops (aligned to the 8-px feature grid) of the cached maps.
    """
    folder.mkdir(parents=True, exist_ok=True)
    shapes = {"relu2_2": (128, 120, 160), "relu3_3": (256, 60, 80), "relu4_3": (512, 30, 40)}
    maps = []
    done = folder / "complete"
    for tap in ENCODER_TAPS:
        mode = "r" if done.exists() else "w+"
        maps.append(np.lib.format.open_memmap(folder / f"{tap}.npy", mode=mode, dtype=np.float16,
                                              shape=(len(rgb), *shapes[tap])))
    if done.exists():
        return maps
    device = torch.device("cpu")
    for i in range(0, len(rgb), 8):
        with torch.no_grad(), autocast(device, dtype):
            feats = net.encoder(rgb[i:i + 8].float(), ENCODER_TAPS)
        for m, tap in zip(maps, ENCODER_TAPS):
            m[i:i + 8] = feats[tap].float().numpy().astype(np.float16)
        if i % 80 == 0:
            print(f"encoded {i + 8}/{len(rgb)}", flush=True)
    for m in maps:
        m.flush()
    done.write_text("ok\n")
    return maps


def sample_batch(maps, depth: torch.Tensor, idx: torch.Tensor, gen: torch.Generator, crop_hw=(192, 256)):
    """Random 8-px-aligned crops of cached features and the matching inverse-depth targets."""
    feats = [[] for _ in maps]
    targets, masks = [], []
    for i in idx.tolist():
        top = 8 * int(torch.randint(0, (240 - crop_hw[0]) // 8 + 1, (), generator=gen))
        left = 8 * int(torch.randint(0, (320 - crop_hw[1]) // 8 + 1, (), generator=gen))
        for k, (m, stride) in enumerate(zip(maps, (2, 4, 8))):
            feats[k].append(torch.from_numpy(np.asarray(m[i, :, top // stride:(top + crop_hw[0]) // stride,
                                                           left // stride:(left + crop_hw[1]) // stride])))
        d = depth[i, :, top:top + crop_hw[0], left:left + crop_hw[1]].float()
        mask = valid_mask(depth[i])[:, top:top + crop_hw[0], left:left + crop_hw[1]]
        inv = torch.where(mask, 255.0 / d.clamp_min(1), torch.zeros_like(d))
        med = inv[mask].median() if mask.any() else torch.tensor(1.0)
        targets.append(inv / med)
        masks.append(mask)
    return [torch.stack(f).float() for f in feats], torch.stack(targets), torch.stack(masks)


def train(args) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    dtype = pick_precision(args.precision, device)
    rgb, depth, stems = load_split(Path(args.data))
    test_csv = Path(args.data).parents[1] / "eval" / "nyu_depth_v2" / "test_split_654.csv"
    if test_csv.is_file():  # never train on a test image
        test = {line.split(",")[0] for line in test_csv.read_text().splitlines()[1:]}
        assert not test & set(stems), "training and test splits overlap"
    net = HedDepthLite({"weights": "random"})
    maps = encode_cache(rgb, net, Path(args.cache), dtype)
    head = net.head
    head.requires_grad_(True)
    head.train()
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():  # fixed tap scales: RMS of each tap over 32 training images
        head.tap_scale.copy_(torch.tensor([float(np.sqrt(np.mean(np.asarray(m[:32], dtype=np.float32) ** 2)))
                                           for m in maps]))
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    warmup = min(100, args.steps // 10)

    def lr_at(step):
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return 2e-5 + 0.5 * (args.lr - 2e-5) * (1 + math.cos(math.pi * progress))

    log = []
    start = time.time()
    n = len(rgb)
    for step in range(args.steps):
        idx = torch.randint(0, n, (args.batch,), generator=gen)
        feats, target, mask = sample_batch(maps, depth, idx, gen)
        with autocast(device, dtype):
            half = head(feats)
        pred = F.interpolate(half.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
        ramp = min(1.0, step / (0.06 * args.steps))
        beta = max(0.1, 1.0 - 0.9 * step / (0.09 * args.steps))
        aligned = least_squares_align(pred, target, mask)
        m = mask.float()
        ssi = (((aligned - target) ** 2) * m).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp_min(1)
        grad = gradient_loss(aligned - target, mask)
        anchor = ((pred - target).abs() * m).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp_min(1)
        loss = (ramp * (ssi + 0.5 * grad) + beta * anchor).mean()
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 25 == 0 or step == args.steps - 1:
            row = {"step": step, "loss": loss.item(), "ssi": ssi.mean().item(), "grad": grad.mean().item(),
                   "anchor": anchor.mean().item(), "lr": lr_at(step), "seconds": round(time.time() - start, 1)}
            log.append(row)
            print(json.dumps(row), flush=True)
    from safetensors.torch import save_file

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(out), metadata={"trained_on": "NYU Depth v2 labeled, 795-image training split",
                                         "steps": str(args.steps), "batch": str(args.batch), "seed": str(args.seed),
                                         "script": "scripts/train_hed_depth_lite.py"})
    print(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB) after {time.time() - start:.0f} s")


def evaluate(args) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rgb, depth, stems = load_split(Path(args.data))
    if args.limit:
        rgb, depth, stems = rgb[: args.limit], depth[: args.limit], stems[: args.limit]
    net = HedDepthLite({"weights": args.weights} if args.weights else {})
    gen = torch.Generator().manual_seed(0)
    rows = np.arange(240, dtype=np.float64)[:, None].repeat(320, 1)
    predictors = {"hed_depth_lite": None, "constant": np.ones((240, 320)), "vertical ramp": 1.0 + rows / 240}
    scores = {k: {"absrel": [], "delta1": [], "ordinal": []} for k in predictors}
    for i in range(0, len(rgb), 8):
        x = rgb[i:i + 8].float()
        with torch.no_grad():
            preds = net.predict(x).double().numpy()[:, 0]
        for j in range(len(x)):
            gt = depth[i + j, 0].double().numpy() / 255.0
            mask = valid_mask(depth[i + j, 0]).numpy()
            for name, fixed in predictors.items():
                pred = preds[j] if fixed is None else fixed
                for metric, value in zip(("absrel", "delta1", "ordinal"), _score(pred, gt, mask, gen)):
                    scores[name][metric].append(value)
    summary = {k: {m: float(np.mean(v)) for m, v in s.items()} for k, s in scores.items()}
    print(json.dumps({"images": len(rgb), "input": "320x240 (as stored)", "metrics": summary}, indent=2))
    return summary


def _score(pred_inv: np.ndarray, gt: np.ndarray, mask: np.ndarray, gen: torch.Generator) -> tuple[float, float, float]:
    """AbsRel and δ<1.25 after LS scale-and-shift in inverse-depth space; ordinal order of the raw output."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", default="../shared/data/depth_train/nyu_depth_v2")
    t.add_argument("--out", default="stylekit/depth/weights/hed_depth_lite.safetensors")
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--precision", default="auto")
    t.add_argument("--cache", default="/tmp/hed_depth_lite_cache", help="where encoder features are cached")
    e = sub.add_parser("eval")
    e.add_argument("--data", default="../shared/data/eval/nyu_depth_v2")
    e.add_argument("--weights", default=None, help="decoder .safetensors (default: the packaged one)")
    e.add_argument("--limit", type=int, default=0)
    e.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    train(args) if args.stage == "train" else evaluate(args)


if __name__ == "__main__":
    main()
