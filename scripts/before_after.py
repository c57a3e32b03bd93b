"""One photo, one row per style: the photo, Johnson's released output, then stylekit's models (docs/gallery).

    python scripts/before_after.py ../shared/data/content/samples/chicago.jpg -o docs/gallery/chicago_styles.jpg \
        --row "wave: Johnson's released model=../shared/data/reference/johnson_eccv16/chicago_wave.jpg; \
               stylekit wave_johnson=wave_johnson; stylekit wave_depth_aware=wave_depth_aware"

Each row is 'NAME: LABEL=SOURCE; …'. A SOURCE is an image file (shown as it is, resized to the photo's width) or
a model for `stylekit.load` (a shipped name, a run, a checkpoint or a file), with ':STYLE' for one style of a
multi-style model. Every model stylizes the photo at --width (Johnson's released outputs are 512 px wide).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

import stylekit
from stylekit.viz import image_grid

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def render(source: str, photo: Image.Image) -> Image.Image:
    if Path(source).suffix.lower() in IMAGE_SUFFIXES and Path(source).is_file():
        return Image.open(source).convert("RGB").resize(photo.size, Image.Resampling.LANCZOS)
    path, _, style = source.partition(":") if not Path(source).exists() else (source, "", "")
    return stylekit.load(path).stylize(photo, style=style or None, precision="fp32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo")
    parser.add_argument("--row", action="append", required=True, help="'NAME: LABEL=SOURCE; LABEL=SOURCE…'")
    parser.add_argument("--width", type=int, default=512, help="width the photo is stylized at (default 512)")
    parser.add_argument("--cell", type=int, default=300, help="width of each picture in the sheet")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    photo = Image.open(args.photo).convert("RGB")
    photo = photo.resize((args.width, round(photo.height * args.width / photo.width)), Image.Resampling.LANCZOS)
    rows, captions, names = [], [], []
    for text in args.row:
        name, _, cells = text.partition(":")
        pairs = [c.strip().split("=", 1) for c in cells.split(";") if c.strip()]
        names.append(name.strip())
        rows.append([photo] + [render(source.strip(), photo) for _, source in pairs])
        captions.append(["photo"] + [label.strip() for label, _ in pairs])
    image_grid(rows, row_titles=names, captions=captions, cell=args.cell).convert("RGB").save(args.output, quality=88)
    print(args.output)


if __name__ == "__main__":
    main()
