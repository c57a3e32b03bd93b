"""Stylize videos frame by frame with imageio-ffmpeg's bundled ffmpeg; the original audio is kept.

Frames are decoded as RGB, stylized in small batches, encoded as H.264 (yuv420p), and the
source's first audio track is muxed back in (copied; re-encoded to AAC when the container
needs it; left out with a warning when neither works).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import StylekitError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a dependency
        raise StylekitError("video needs imageio-ffmpeg: pip install imageio-ffmpeg") from exc
    return imageio_ffmpeg


def stylize_video(run: Callable[[torch.Tensor], torch.Tensor], source: str | Path, target: str | Path, *,
                  batch: int = 4, max_size: int | None = None, quality: float = 8.0,
                  on_frames: Callable[[int, int | None], None] | None = None,
                  on_warning: Callable[[str], None] | None = None) -> Path:
    """``run`` (N×3×H×W in [0, 255] → same) over every frame of ``source``; writes ``target`` (H.264 + audio)."""
    ffmpeg = _ffmpeg()
    source, target = Path(source), Path(target)
    try:
        reader = ffmpeg.read_frames(str(source))
        meta = next(reader)
    except (RuntimeError, OSError, StopIteration) as exc:
        raise StylekitError(f"{source}: cannot read video: {exc}") from exc
    w, h = meta["size"]
    fps = meta.get("fps") or 25.0
    duration = meta.get("duration") or 0
    expected = int(round(duration * fps)) or None
    out_w, out_h = w, h
    if max_size and max(w, h) > max_size:
        scale = max_size / max(w, h)
        out_w, out_h = max(2, round(w * scale)), max(2, round(h * scale))
    out_w, out_h = out_w - out_w % 2, out_h - out_h % 2  # yuv420p needs even sizes
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        silent = Path(tmp) / ("video" + ".mp4")
        writer = ffmpeg.write_frames(str(silent), (out_w, out_h), fps=fps, codec="libx264", quality=quality,
                                     pix_fmt_out="yuv420p", macro_block_size=1, ffmpeg_log_level="error")
        writer.send(None)
        done = 0
        pending: list[np.ndarray] = []

        def flush() -> None:
            nonlocal done
            frames = torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2).float()
            if (out_h, out_w) != (h, w):
                frames = torch.nn.functional.interpolate(frames, size=(out_h, out_w), mode="bilinear",
                                                         antialias=True, align_corners=False)
            styled = run(frames).float().clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            for frame in styled:
                writer.send(np.ascontiguousarray(frame))
            done += len(pending)
            pending.clear()
            if on_frames:
                on_frames(done, expected)

        try:
            for raw in reader:
                pending.append(np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3))
                if len(pending) == batch:
                    flush()
            if pending:
                flush()
        finally:
            writer.close()
            reader.close()
        if done == 0:
            raise StylekitError(f"{source}: no frames could be decoded")
        _mux_audio(ffmpeg.get_ffmpeg_exe(), silent, source, target, on_warning)
    return target


def _mux_audio(exe: str, video: Path, source: Path, target: Path, on_warning) -> None:
    """Copy the source's audio next to the new video stream (copy, else AAC, else no audio)."""
    base = [exe, "-y", "-loglevel", "error", "-i", str(video), "-i", str(source), "-map", "0:v:0", "-map", "1:a:0?",
            "-c:v", "copy", "-shortest"]
    for audio in (["-c:a", "copy"], ["-c:a", "aac"]):
        proc = subprocess.run([*base, *audio, str(target)], capture_output=True, text=True)
        if proc.returncode == 0:
            return
    shutil.copyfile(video, target)
    if on_warning:
        on_warning(f"{source}: the audio track could not be copied ({proc.stderr.strip()[-200:]}); "
                   "video written without audio")


def frame_count(path: str | Path) -> int:
    """Frames in a video (decodes it; for tests and summaries)."""
    ffmpeg = _ffmpeg()
    reader = ffmpeg.read_frames(str(path))
    next(reader)
    return sum(1 for _ in reader)
