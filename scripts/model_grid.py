"""Several trained models side by side on the same photos: rows = photos, columns = content then each model.

    python scripts/model_grid.py --content ../shared/data/depth_train/nyu_depth_v2/rgb --pick 0,1,5,9 \
        "Johnson twin, seed 0=runs/paper_effect/paper_effect-without-depth" \
        "depth weight 50=runs/paper_effect/paper_effect" -o docs/gallery/paper_effect_sweep.jpg

Each MODEL is LABEL=PATH (a run folder, checkpoint or model file; a shipped model's name works too). Used for the
depth-weight sweep's picture in docs/paper.md; `stylekit ablate` draws the same kind of sheet for one grid.
"""

from __future__ import annotations

import argparse

import stylekit
from stylekit.data import list_images, load_image
from stylekit.viz import image_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="LABEL=PATH, one per column")
    parser.add_argument("--content", required=True, help="folder of photos (sorted by name)")
    parser.add_argument("--pick", default="0,1,2,3", help="indices of the photos to show (default: the first four)")
    parser.add_argument("--title", default="")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    if any("=" not in m for m in args.models):
        parser.error("give each model as LABEL=PATH, e.g. 'depth weight 50=runs/paper_effect/paper_effect'")
    columns = [m.split("=", 1) for m in args.models]
    files = list_images(args.content)
    picks = [files[int(i)] for i in args.pick.split(",")]
    stylizers = [stylekit.load(path) for _, path in columns]
    rows = []
    for photo in picks:
        image = load_image(photo)[0]
        rows.append([image] + [s.stylize(image) for s in stylizers])
    grid = image_grid(rows, column_titles=["content"] + [label for label, _ in columns],
                      row_titles=[p.stem for p in picks], cell=256, title=args.title)
    grid.convert("RGB").save(args.output, quality=85)
    print(args.output)


if __name__ == "__main__":
    main()
