"""Train and evaluate stylekit's shipped depth decoders on frozen encoders: ``effnet_depth_lite`` (ImageNet
EfficientNet-Lite) and ``hed_depth_lite`` (HED's VGG-16).

Reproduce the shipped decoders (CPU is enough; bf16 autocast where the CPU has bf16 units):

    python scripts/train_depth_lite.py train --network effnet_depth_lite
    python scripts/train_depth_lite.py train --network effnet_depth_lite --encoder lite2   # the judge
    python scripts/train_depth_lite.py train --network hed_depth_lite
    python scripts/train_depth_lite.py eval --network effnet_depth_lite   # any registered depth network

The saved decoder's last layer is divided by the output's spread on the training frames (``calibrate``), so
maps are in units of a photo's typical depth variation and a raw-output depth loss keeps its weight.

Data: NYU Depth v2 labeled frames at 320×240 with 8-bit relative depth (see ``scripts/nyu_depth.py``).
The last ``--val`` frames of the 795-image training split (whole scenes: NYU stems are grouped by scene)
are held out for the validation line printed during training; the test split is never read by ``train``.

Each step: random frames, a random scale and crop (per network, below), horizontal flip, color jitter
(brightness, contrast, saturation, gamma); the encoder runs frozen under ``no_grad``. Loss (Ranftl
et al., MiDaS, TPAMI 2020): scale-and-shift-invariant MAE on inverse depth after median/mean-absolute-
deviation normalization (positive scale, so the map stays ordered like inverse depth) plus 0.5 × a
4-scale gradient-matching term on the normalized residual.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nyu_depth import evaluate_predictor, load_split, test_stems, valid_mask  # noqa: E402

from stylekit import create_depth_network  # noqa: E402
from stylekit.hardware import autocast, cpu_description, pick_channels_last, pick_precision  # noqa: E402

#: per network: (crop height, width), (smallest, largest scale of the 240×320 frame), the options of the
#: network being trained. effnet_depth_lite runs at a 256-px shorter side by default, so it sees frames
#: enlarged; hed_depth_lite is meant to run on the perception backbone's own features at the training
#: image size (128–256 px), so it also sees frames shrunk.
SETUPS = {
    "effnet_depth_lite": {"crop": (224, 288), "scale": (1.0, 1.6), "options": {"encoder": "lite0"}},
    "hed_depth_lite": {"crop": (160, 208), "scale": (0.67, 1.33), "options": {}},
}


def augment(rgb: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor, gen: torch.Generator,
            crop: tuple[int, int], scale: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random scale + crop + flip of each frame (RGB bilinear, depth and mask nearest), then color jitter."""
    xs, ds, ms = [], [], []
    ch, cw = crop
    for x, d, m in zip(rgb.float(), depth.float(), mask.float()):
        s = scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=gen))
        h, w = max(ch, round(240 * s)), max(cw, round(320 * s))
        x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        d = F.interpolate(d[None], size=(h, w), mode="nearest")[0]
        m = F.interpolate(m[None], size=(h, w), mode="nearest")[0]
        top = int(torch.randint(0, h - ch + 1, (), generator=gen))
        left = int(torch.randint(0, w - cw + 1, (), generator=gen))
        x, d, m = (t[:, top:top + ch, left:left + cw] for t in (x, d, m))
        if float(torch.rand((), generator=gen)) < 0.5:
            x, d, m = x.flip(-1), d.flip(-1), m.flip(-1)
        xs.append(x), ds.append(d), ms.append(m)
    x, d, m = torch.stack(xs), torch.stack(ds), torch.stack(ms) > 0.5
    n = len(x)

    def jitter(spread: float) -> torch.Tensor:
        return 1.0 + spread * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)

    x = x * jitter(0.25)  # brightness
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * jitter(0.25) + mean  # contrast
    gray = x.mean(1, keepdim=True)
    x = (x - gray) * jitter(0.3) + gray  # saturation
    x = 255.0 * (x.clamp(0, 255) / 255.0) ** jitter(0.2)  # gamma
    return x, d, m


def normalize(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image: subtract the median, divide by the mean absolute deviation (over ``mask``)."""
    out = torch.zeros_like(x)
    for i in range(len(x)):
        v = x[i][mask[i]]
        if v.numel() < 16:
            continue
        med = v.median()
        mad = (v - med).abs().mean().clamp_min(1e-6)
        out[i] = (x[i] - med) / mad
    return out


def gradient_matching(residual: torch.Tensor, mask: torch.Tensor, scales: int = 4) -> torch.Tensor:
    total = residual.new_zeros(len(residual))
    for k in range(scales):
        r, m = residual[..., :: 2**k, :: 2**k], mask[..., :: 2**k, :: 2**k].float()
        gx = (r[..., :, 1:] - r[..., :, :-1]).abs() * m[..., :, 1:] * m[..., :, :-1]
        gy = (r[..., 1:, :] - r[..., :-1, :]).abs() * m[..., 1:, :] * m[..., :-1, :]
        total = total + (gx.sum((1, 2, 3)) + gy.sum((1, 2, 3))) / m.sum((1, 2, 3)).clamp_min(1)
    return total / scales


def ssi_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, alpha: float = 0.5):
    p, t = normalize(pred, mask), normalize(target, mask)
    m = mask.float()
    mae = ((p - t).abs() * m).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp_min(1)
    grad = gradient_matching(p - t, mask)
    return (mae + alpha * grad).mean(), mae.mean(), grad.mean()


class FeatureCache:
    """``variants`` augmented samples of every training frame, encoded once, as float16 memory maps.

    With a heavy frozen encoder (HED's VGG-16) the encoder dominates a step; encoding a fixed pool of
    augmented crops once makes each step cost only the decoder, at the price of a finite augmentation pool.
    """

    def __init__(self, folder: Path, net, rgb, depth, mask, gen, setup, variants: int, memory_format, dtype):
        folder.mkdir(parents=True, exist_ok=True)
        n = len(rgb) * variants
        ch, cw = setup["crop"]
        done = folder / "complete"
        mode = "r" if done.exists() else "w+"
        with torch.no_grad():
            probe = net.encode(torch.zeros(1, 3, ch, cw).contiguous(memory_format=memory_format))
        self.levels = [np.lib.format.open_memmap(folder / f"level{i}.npy", mode=mode, dtype=np.float16,
                                                 shape=(n, *f.shape[1:])) for i, f in enumerate(probe)]
        self.target = np.lib.format.open_memmap(folder / "target.npy", mode=mode, dtype=np.float32, shape=(n, 1, ch, cw))
        self.mask = np.lib.format.open_memmap(folder / "mask.npy", mode=mode, dtype=np.bool_, shape=(n, 1, ch, cw))
        if done.exists():
            return
        order = torch.arange(len(rgb)).repeat(variants)
        start = time.time()
        for i in range(0, n, 8):
            idx = order[i:i + 8]
            x, d, m = augment(rgb[idx], depth[idx], mask[idx], gen, setup["crop"], setup["scale"])
            with torch.no_grad(), autocast(torch.device("cpu"), dtype):
                feats = net.encode(x.contiguous(memory_format=memory_format))
            for level, f in zip(self.levels, feats):
                level[i:i + len(idx)] = f.float().numpy().astype(np.float16)
            self.target[i:i + len(idx)] = torch.where(m, 255.0 / d.clamp_min(1), torch.zeros_like(d)).numpy()
            self.mask[i:i + len(idx)] = m.numpy()
            if i % 400 == 0:
                print(f"encoded {i + len(idx)}/{n} samples ({time.time() - start:.0f} s)", flush=True)
        for array in (*self.levels, self.target, self.mask):
            array.flush()
        done.write_text("ok\n")

    def __len__(self) -> int:
        return len(self.target)

    def batch(self, idx: torch.Tensor, memory_format):
        rows = np.sort(idx.numpy())
        feats = [torch.from_numpy(np.asarray(level[rows])).float().contiguous(memory_format=memory_format)
                 for level in self.levels]
        return feats, torch.from_numpy(np.asarray(self.target[rows])), torch.from_numpy(np.asarray(self.mask[rows]))


def train(args) -> None:
    options = network_options(args)
    if args.out is None:
        if args.network == "effnet_depth_lite":
            from stylekit.depth.effnet_depth_lite import DECODER_WEIGHTS

            args.out = f"stylekit/depth/weights/{DECODER_WEIGHTS[options['encoder']].filename}"
        else:
            args.out = f"stylekit/depth/weights/{args.network}.safetensors"
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    dtype = pick_precision(args.precision, device)
    rgb, depth, stems = load_split(Path(args.data))
    overlap = test_stems(Path(args.data)) & set(stems)
    if overlap:
        raise SystemExit(f"{len(overlap)} training frames are in the NYU test split (e.g. {sorted(overlap)[:3]})")
    n_train = len(stems) - args.val
    mask = valid_mask(depth)
    setup = SETUPS[args.network]
    net = create_depth_network(args.network, weights="random", **options)
    # NHWC where it is faster (bf16 on CPU: oneDNN's bf16 convolutions want it; see stylekit.hardware)
    _, nhwc = pick_channels_last(None, device, dtype)
    memory_format = torch.channels_last if nhwc else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    head = net.head
    head.requires_grad_(True)
    params = list(head.parameters())
    print(f"{cpu_description()}, {dtype}; {n_train} train / {args.val} val frames; decoder "
          f"{sum(p.numel() for p in params) / 1e6:.2f} M parameters", flush=True)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed)
    if hasattr(head, "tap_scale"):  # fixed divisors making each encoder tap's RMS ≈ 1 (hed_depth_lite)
        with torch.no_grad(), autocast(device, dtype):
            x, _, _ = augment(rgb[:32], depth[:32], mask[:32], gen, setup["crop"], setup["scale"])
            head.tap_scale.copy_(torch.stack([f.float().pow(2).mean().sqrt() for f in net.encode(x)]))
    start_step = 0
    state_path = Path(args.out).with_suffix(".train_state.pt")
    state_path.parent.mkdir(parents=True, exist_ok=True)
    if args.resume and state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        start_step = state["step"]
        print(f"resumed at step {start_step}", flush=True)
    cache = None
    if args.cache_variants:
        cache = FeatureCache(Path(args.cache), net, rgb[:n_train], depth[:n_train], mask[:n_train],
                             torch.Generator().manual_seed(args.seed + 1), setup, args.cache_variants,
                             memory_format, dtype)
    warmup = min(200, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))

    start = time.time()
    for step in range(start_step, args.steps):
        if cache is not None:
            feats, target, m = cache.batch(torch.randint(0, len(cache), (args.batch,), generator=gen), memory_format)
        else:
            idx = torch.randint(0, n_train, (args.batch,), generator=gen)
            x, d, m = augment(rgb[idx], depth[idx], mask[idx], gen, setup["crop"], setup["scale"])
            target = torch.where(m, 255.0 / d.clamp_min(1), torch.zeros_like(d))
            with torch.no_grad(), autocast(device, dtype):
                feats = net.encode(x.contiguous(memory_format=memory_format))
        with autocast(device, dtype):
            half = head([f.detach() for f in feats])
        pred = F.interpolate(half.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
        loss, mae, grad = ssi_loss(pred, target, m)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(json.dumps({"step": step, "loss": round(loss.item(), 4), "mae": round(mae.item(), 4),
                              "grad": round(grad.item(), 4), "lr": round(lr_at(step), 6),
                              "seconds": round(time.time() - start, 1)}), flush=True)
        if (step + 1) % args.save_every == 0 or step == args.steps - 1:
            torch.save({"head": head.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                        "step": step + 1}, state_path)
            if args.val:
                scores = evaluate_predictor(net.predict, rgb[n_train:], depth[n_train:], baselines=False)
                print(json.dumps({"step": step + 1, "val": scores["network"]}), flush=True)
    save(head, Path(args.out), args, net, rgb[:n_train])
    print(f"saved {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB) after {time.time() - start:.0f} s")


def network_options(args) -> dict:
    """The trained network's options: the setup's, with ``--encoder`` for effnet_depth_lite."""
    options = dict(SETUPS[args.network]["options"])
    if args.encoder:
        if "encoder" not in options:
            raise SystemExit(f"--encoder applies to effnet_depth_lite, not {args.network}")
        options["encoder"] = args.encoder
    return options


def output_spread(net, rgb: torch.Tensor) -> float:
    """Mean over frames of the mean absolute deviation of the network's map from its median.

    The scale-and-shift-invariant loss leaves the output's scale free, and it drifts during training
    (hundreds, for effnet_depth_lite); a depth loss that compares raw maps (the paper's l_depth) would need
    its weight retuned after every retraining. Dividing the last layer by this spread makes one unit of
    output the typical depth variation within a training photo.
    """
    spreads = []
    with torch.no_grad():
        for i in range(0, len(rgb), 16):
            pred = net.predict(rgb[i:i + 16]).float().flatten(1)
            spreads.append((pred - pred.median(1, keepdim=True).values).abs().mean(1))
    return float(torch.cat(spreads).mean())


def calibrate(net, rgb: torch.Tensor, metadata: dict[str, str]) -> float:
    """Divide ``net``'s output by its spread on the training frames ``rgb`` (:func:`output_spread`), folded into
    the head's last convolution (weight and bias), and note the divisor in ``metadata``."""
    spread = output_spread(net, rgb)
    last = [m for m in net.head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.div_(spread)
        last.bias.div_(spread)
    metadata["output_divided_by"] = f"{spread:.6g}"
    return spread


def write_decoder(head: torch.nn.Module, out: Path | str, metadata: dict[str, str]) -> None:
    """The head's weights as fp16 safetensors, with ``metadata``."""
    from safetensors.torch import save_file

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(out), metadata=metadata)


def save(head: torch.nn.Module, out: Path, args, net=None, rgb: torch.Tensor | None = None) -> None:
    """fp16 safetensors with the training settings as metadata; with ``net`` and training frames ``rgb``, the
    output is calibrated first (:func:`calibrate`)."""
    metadata = {
        "trained_on": "NYU Depth v2 labeled, 795-image training split (last --val frames held out)",
        "network": args.network, "options": json.dumps(network_options(args)), "steps": str(args.steps),
        "batch": str(args.batch), "seed": str(args.seed), "script": "scripts/train_depth_lite.py"}
    if net is not None and rgb is not None:
        calibrate(net, rgb, metadata)
    write_decoder(head, out, metadata)


def calibrate_file(args) -> None:
    """Calibrate an already trained decoder file in place (see :func:`output_spread`)."""
    from safetensors import safe_open

    torch.set_num_threads(args.threads)
    with safe_open(args.weights, "pt") as f:
        metadata = dict(f.metadata() or {})
    if "output_divided_by" in metadata:
        raise SystemExit(f"{args.weights} is calibrated already (output divided by {metadata['output_divided_by']})")
    options = json.loads(metadata.get("options", "{}"))
    net = create_depth_network(metadata.get("network", "effnet_depth_lite"), weights=args.weights, **options)
    rgb, _, stems = load_split(Path(args.data))
    spread = calibrate(net, rgb[: len(stems) - args.val], metadata)
    write_decoder(net.head, args.weights, metadata)
    print(f"{args.weights}: output divided by {spread:.6g}")


def evaluate(args) -> dict:
    from stylekit import create_depth_network

    torch.set_num_threads(args.threads)
    rgb, depth, stems = load_split(Path(args.data))
    if args.limit:
        rgb, depth = rgb[: args.limit], depth[: args.limit]
    options = dict(kv.split("=", 1) for kv in args.option)
    if args.weights:
        options["weights"] = args.weights
    net = create_depth_network(args.network, **options)
    sign = 1.0 if net.output_kind == "inverse_depth" else -1.0
    summary = evaluate_predictor(lambda x: sign * net.predict(x), rgb, depth)
    summary[args.network] = summary.pop("network")
    x = torch.rand(1, 3, 256, 256) * 255  # cost of one 256-px image, fp32, this CPU
    with torch.no_grad():
        net.predict(x)
        t = time.perf_counter()
        for _ in range(5):
            net.predict(x)
    ms = (time.perf_counter() - t) / 5 * 1000
    print(json.dumps({"images": len(rgb), "network": args.network, "options": options, "metrics": summary,
                      "ms_per_256px_image_fp32": round(ms, 1), "cpu": cpu_description(),
                      "threads": args.threads}, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", default="../shared/data/depth_train/nyu_depth_v2")
    t.add_argument("--network", default="effnet_depth_lite", choices=sorted(SETUPS))
    t.add_argument("--encoder", default=None, choices=["lite0", "lite1", "lite2"],
                   help="effnet_depth_lite's encoder (default lite0; lite2's decoder is an evaluation judge)")
    t.add_argument("--out", default=None, help="default: the network's shipped file in stylekit/depth/weights/")
    t.add_argument("--steps", type=int, default=8000)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--val", type=int, default=60, help="frames at the end of the split held out for validation")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    t.add_argument("--save-every", type=int, default=500)
    t.add_argument("--resume", action="store_true", help="continue from OUT.train_state.pt")
    t.add_argument("--cache-variants", type=int, default=0, metavar="K",
                   help="encode K augmented samples per frame once and train on those (0: augment online)")
    t.add_argument("--cache", default="/tmp/depth_lite_cache", help="folder for the encoded samples")
    e = sub.add_parser("eval")
    e.add_argument("--data", default="../shared/data/eval/nyu_depth_v2")
    e.add_argument("--network", default="effnet_depth_lite", help="any registered depth network")
    e.add_argument("--weights", default=None, help="the network's weights option (default: its own default)")
    e.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="other network options")
    e.add_argument("--limit", type=int, default=0)
    e.add_argument("--threads", type=int, default=2)
    c = sub.add_parser("calibrate", help="divide a trained decoder's output by its spread on the training frames "
                                         "(done by train; for files saved before it was)")
    c.add_argument("weights")
    c.add_argument("--data", default="../shared/data/depth_train/nyu_depth_v2")
    c.add_argument("--val", type=int, default=60)
    c.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    {"train": train, "eval": evaluate, "calibrate": calibrate_file}[args.stage](args)


if __name__ == "__main__":
    main()
