"""Tiled stylization of large images (feathered overlaps) and video stylization with audio kept."""

import subprocess

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stylekit.checkpoint import save_model
from stylekit.cli import app
from stylekit.models.transformer import TransformerNet
from stylekit.stylize import stylize_tensor
from stylekit.tiling import feather, stylize_tiled, tile_spans

R = 40  # > receptive-field radius of a 1-residual-block transformer


def _net(norm: str) -> TransformerNet:
    torch.manual_seed(0)
    net = TransformerNet({"channels": 8, "residual_blocks": 1, "norm": norm})
    for name, buffer in net.named_buffers():
        if "running_mean" in name:
            buffer.normal_(0, 0.1)
        elif "running_var" in name:
            buffer.uniform_(0.5, 2.0)
    return net.eval()


def _texture(h: int, w: int, gradient: float = 0.0) -> torch.Tensor:
    img = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)) * 255
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return ((1 - gradient / 255) * img + gradient * torch.stack([xx, yy, xx * yy])[None]).clamp(0, 255)


def _profile_jump(diff: torch.Tensor) -> float:
    """Largest step between neighboring columns/rows of the mean difference: a seam shows up as a step."""
    cols = diff.mean(dim=(0, 1, 2)).diff().abs().max()
    rows = diff.mean(dim=(0, 1, 3)).diff().abs().max()
    return float(max(cols, rows))


def test_spans_cover_the_image_on_the_stride_grid():
    for length, tile, overlap in ((250, 160, 48), (1080, 512, 64), (1921, 512, 64), (100, 512, 64)):
        spans = tile_spans(length, tile, overlap)
        assert spans[0][0] == 0 and sum(spans[-1]) == length
        assert all(start % 4 == 0 for start, _ in spans)
        for (a, n), (b, _) in zip(spans, spans[1:]):
            assert a + n - b >= overlap
    w = feather(162, 88, 250, 48)  # the last tile: ramp in, no ramp out
    assert w[0] < 0.02 and w[-1] == 1 and torch.all(w[1:48] > w[:47])


def test_tiling_is_exact_away_from_tile_edges_with_batch_norm():
    net, img = _net("batch"), _texture(250, 330, gradient=60)
    with torch.no_grad():
        full = net(img)
    tiled = stylize_tiled(net, img, tile=160, overlap=48)
    mask = torch.ones(250, 330, dtype=torch.bool)  # pixels farther than R from every covering tile's inner edges
    for top, th in tile_spans(250, 160, 48):
        for left, tw in tile_spans(330, 160, 48):
            inside = torch.zeros_like(mask)
            inside[top:top + th, left:left + tw] = True
            inner = torch.zeros_like(mask)
            inner[top + R if top else 0:top + th - R if top + th < 250 else 250,
                  left + R if left else 0:left + tw - R if left + tw < 330 else 330] = True
            mask &= ~inside | inner
    assert mask.float().mean() > 0.3
    diff = tiled - full
    assert diff[..., mask].abs().max() < 1e-3
    assert diff.abs().max() < 2.0 and _profile_jump(diff) < 0.5  # near seams: a small, smooth difference


def test_tiling_with_instance_norm_has_no_seam():
    # Instance norm normalizes each tile with its own statistics, so tiled ≠ untiled; feathering must keep
    # the difference smooth (no step at tile borders, unlike hard-edged tiles) and small on a texture.
    net, img = _net("instance"), _texture(250, 330)
    with torch.no_grad():
        full = net(img)
    tiled = stylize_tiled(net, img, tile=160, overlap=48)
    hard = stylize_tiled(net, img, tile=160, overlap=1)
    diff = tiled - full
    assert diff.abs().mean() < 3.0 and diff.abs().flatten().quantile(0.99) < 12.0
    assert _profile_jump(diff) < 1.5 and _profile_jump(diff) < 0.5 * _profile_jump(hard - full)
    auto = stylize_tensor(net, img, tile=None)  # below the automatic threshold: one pass
    torch.testing.assert_close(auto, stylize_tensor(net, img, tile=0))
    torch.testing.assert_close(stylize_tensor(net, img, tile=0, margin=0), full)


class _EdgeBrightener(torch.nn.Module):
    """Stands in for a trained network's edge rows: the image unchanged, its outer 2 rows and columns +60."""

    def forward(self, x):
        out = x.clone()
        for index in (slice(0, 2), slice(-2, None)):
            out[..., index, :] += 60
            out[..., :, index] += 60
        return out


def test_the_mirrored_margin_keeps_the_networks_edge_rows_out_of_the_picture():
    img = _texture(50, 70)
    raw = stylize_tensor(_EdgeBrightener(), img, margin=0)
    assert (raw - img)[..., 0, :].mean() >= 60  # what a user used to get along every edge
    for h, w in ((50, 70), (9, 9), (3, 12), (1, 1)):  # images too small to mirror: edge pixels repeated
        part = img[..., :h, :w]
        torch.testing.assert_close(stylize_tensor(_EdgeBrightener(), part), part)  # exactly the picture, aligned


def test_streamed_tiles_into_an_image_equal_the_tensor_result():
    # stylize_image hands finished rows of tiles straight to the 8-bit output (bounded memory); it must
    # give the same pixels as the whole-image float accumulation, for tiles that do and don't divide the size.
    from PIL import Image

    from stylekit.data import to_image
    from stylekit.stylize import stylize_image

    net, img = _net("instance"), _texture(250, 330, gradient=60).round()  # exactly representable in 8 bits
    for tile, overlap in ((96, 16), (160, 48)):
        streamed = np.asarray(stylize_image(net, to_image(img[0]), tile=tile, overlap=overlap), dtype=np.int16)
        whole = np.asarray(to_image(stylize_tensor(net, img, tile=tile, overlap=overlap)[0]), dtype=np.int16)
        assert streamed.shape == (250, 330, 3) and np.abs(streamed - whole).max() <= 1
    assert isinstance(stylize_image(net, Image.new("RGB", (1, 1))), Image.Image)


def _write_clip(path, frames=10, size=(64, 48), audio=True):
    import imageio_ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    w, h = size
    cmd = [exe, "-y", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate=10",
           *(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000"] if audio else []),
           "-frames:v", str(frames), "-t", str(frames / 10), "-c:v", "libx264", "-pix_fmt", "yuv420p",
           *(["-c:a", "aac", "-shortest"] if audio else []), str(path)]
    subprocess.run(cmd, check=True, capture_output=True)


def _has_audio(path) -> bool:
    import imageio_ffmpeg

    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True)
    return "Audio:" in proc.stderr


def test_video_is_stylized_frame_by_frame_with_audio(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    from stylekit.video import frame_count

    clip = tmp_path / "clip.mp4"
    _write_clip(clip)
    assert frame_count(clip) == 10 and _has_audio(clip)
    save_model(_net("instance"), tmp_path / "model.safetensors")
    result = CliRunner().invoke(app, ["stylize", str(tmp_path / "model.safetensors"), str(clip),
                                      "-o", str(tmp_path / "out.mp4"), "--device", "cpu", "--batch", "4"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.mp4"
    assert frame_count(out) == 10 and _has_audio(out)
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert tuple(meta["size"]) == (64, 48)
    first = np.frombuffer(next(reader), np.uint8).reshape(48, 64, 3)
    reader.close()
    assert first.std() > 1  # an image, not a blank frame


def test_auto_precision_follows_the_device_and_bf16_stays_close_to_fp32(monkeypatch):
    import stylekit.hardware as hardware
    from stylekit.models import TransformerNet
    from stylekit.stylize import _runner

    cpu = torch.device("cpu")
    assert hardware.pick_precision("auto", torch.device("cuda"), inference=True) == torch.float16
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)
    assert hardware.pick_precision("auto", cpu, inference=True) == torch.bfloat16
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: False)
    assert hardware.pick_precision("auto", cpu, inference=True) == torch.float32
    assert hardware.pick_precision("fp32", torch.device("cuda"), inference=True) == torch.float32
    torch.manual_seed(0)
    net = TransformerNet({"channels": 8, "residual_blocks": 2}).eval()
    x = torch.rand(1, 3, 48, 40) * 255
    difference = (_runner(net, torch.bfloat16)(x) - _runner(net, torch.float32)(x)).abs()
    assert float(difference.max()) < 4.0 and float(difference.mean()) < 1.0  # 0–255 scale


# -- memory: a huge image streams to the PNG encoder ---------------------------------------------------------------

def test_png_writer_writes_what_pillow_reads_and_leaves_no_partial_file(tmp_path):
    from PIL import Image

    from stylekit.pngstream import PngWriter

    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(0, 3, (53, 71, 3)), axis=1).clip(0, 255).astype(np.uint8)
    with PngWriter(tmp_path / "a.png", 71, 53) as png:
        for top in range(0, 53, 20):  # bands of any height
            png.write(smooth[top:top + 20])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), smooth)
    with pytest.raises(ValueError, match="40 of the PNG's 53 rows"):
        with PngWriter(tmp_path / "b.png", 71, 53) as png:
            png.write(smooth[:40])
    assert not (tmp_path / "b.png").exists()


def test_a_tiled_png_is_written_a_row_of_tiles_at_a_time(tmp_path, monkeypatch):
    """The result never exists whole: each band handed to the encoder is at most one row of tiles, and the file
    holds exactly what stylize_image returns."""
    from PIL import Image

    from stylekit import pngstream
    from stylekit.stylize import save_stylized, stylize_image

    net, photo = _net("instance"), Image.fromarray(np.asarray(_texture(300, 220, 60)[0].permute(1, 2, 0).byte()))
    bands = []
    write = pngstream.PngWriter.write
    monkeypatch.setattr(pngstream.PngWriter, "write", lambda self, rows: (bands.append(len(rows)), write(self, rows)))
    save_stylized(net, photo, tmp_path / "out.png", tile=96, overlap=16)
    assert sum(bands) == 300 and len(bands) > 3 and max(bands) <= 96
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")),
                          np.asarray(stylize_image(net, photo, tile=96, overlap=16)))
