"""How much a model changes the brightness of a picture's outer rows and columns, by the mirrored margin
`stylekit stylize` puts around the input (stylekit.stylize.MARGIN; docs/quality.md, "Edge rows").

    python scripts/edge_rows.py wave_johnson wave_depth_aware starry_night multi_style

For each photo and side, the edge statistic is the mean luma of the outer 2 rows (or columns) minus that of the
next 6; the script prints the mean and largest |model's statistic − the photo's| over 4 sides of --photos
training photos (every 78th of ../shared/data/content/train, 384 px wide), for each margin. A multi-style model is
measured in its first style. ``--picture FILE`` also draws, per model, the bottom-right corner of the first photo
(photo, no margin, the default margin), enlarged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import stylekit
from stylekit.data import to_image, to_tensor
from stylekit.stylize import MARGIN, stylize_tensor
from stylekit.viz import image_grid

MARGINS = (0, 4, MARGIN, 16, 32)


def edge_statistic(image: torch.Tensor) -> np.ndarray:
    """3×H×W in [0, 255] → (top, bottom, left, right): outer-2 luma minus next-6 luma."""
    luma = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).numpy()
    return np.array([luma[:2].mean() - luma[2:8].mean(), luma[-2:].mean() - luma[-8:-2].mean(),
                     luma[:, :2].mean() - luma[:, 2:8].mean(), luma[:, -2:].mean() - luma[:, -8:-2].mean()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="shipped names, runs or checkpoints")
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--content", default=str(Path(__file__).resolve().parents[1] / "../shared/data/content/train"))
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--picture", help="write the corners of the first photo here (e.g. a .jpg)")
    args = parser.parse_args()
    files = sorted(Path(args.content).glob("*.jpg"))[::78][:args.photos]
    photos = []
    for file in files:
        image = Image.open(file).convert("RGB")
        photos.append(to_tensor(image.resize((args.width, round(image.height * args.width / image.width))))[None])
    photo_edges = [edge_statistic(x[0]) for x in photos]
    rows, corner = [], (slice(None), slice(-72, None), slice(-96, None))
    print("| model | " + " | ".join(f"margin {m}" for m in MARGINS) + " |")
    print("|---|" + "---:|" * len(MARGINS))
    for name in args.models:
        net = stylekit.load(name).float().eval().net
        if getattr(net, "styles", None):
            net = net.styled(net.styles[0])
        cells, first = [], {}  # first: the first photo's result at each margin, for the picture
        for margin in MARGINS:
            outputs = [stylize_tensor(net, x, tile=0, margin=margin)[0].clamp(0, 255) for x in photos]
            first[margin] = outputs[0]
            errors = [np.abs(edge_statistic(out) - edges) for out, edges in zip(outputs, photo_edges)]
            cells.append(f"{np.mean(errors):.1f} (max {np.max(errors):.0f})")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
        rows.append([to_image(image[corner]).resize((288, 216), Image.Resampling.NEAREST)
                     for image in (photos[0][0], first[0], first[MARGIN])])
    if args.picture:
        captions = [["photo", "no margin", f"margin {MARGIN} (stylize's)"]] * len(rows)
        image_grid(rows, row_titles=args.models, captions=captions, cell=288).convert("RGB").save(args.picture)


if __name__ == "__main__":
    main()
