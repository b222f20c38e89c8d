"""Render the README's pictures of the effects from the public-domain photos in
../shared/eval/photos: `.venv/bin/python docs/make_pictures.py` (writes docs/images/).

Each picture is the service's own output (the worker's pipeline, in this process), scaled
down to a few hundred pixels so that the files stay small.
"""

import os
import sys
from pathlib import Path

import django
import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "eval" / "photos"
OUT = REPO / "docs" / "images"
MODEL = "deeplabv3_mnv2_pascal"


def main():
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "segsite.settings")
    django.setup()
    from core.imageio import decode_image
    from core.repository import local_specs
    from workers import registry

    registry.load_models([local_specs()[MODEL]])
    OUT.mkdir(parents=True, exist_ok=True)
    with open(PHOTOS / "astronaut.jpg", "rb") as fileobj:
        photo = decode_image(fileobj, 10**8).rgb
    with open(PHOTOS / "coffee.jpg", "rb") as fileobj:
        coffee = decode_image(fileobj, 10**8).rgb
    effects_strip(photo, coffee)
    edges(photo)
    print(f"written: {', '.join(sorted(p.name for p in OUT.iterdir()))}")


def run(rgb, background_image=None, **options):
    from workers.pipeline import segment

    options = {"classes": ["person"], "background": "transparent", **options}
    rendered, _, _ = segment(rgb, MODEL, options, task="cutout", background_image=background_image)
    return rendered


def decoded(data):
    import io

    return Image.open(io.BytesIO(data))


def checkerboard(size, square=16):
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    board = np.where(((x // square) + (y // square)) % 2, 205, 255).astype(np.uint8)
    return Image.fromarray(np.dstack([board] * 3)).convert("RGBA")


def effects_strip(photo, coffee):
    """The photo, then transparent, blurred, coloured and replaced backgrounds, side by side."""
    tiles = [Image.fromarray(photo)]
    cutout = decoded(run(photo).files["cutout.png"]).convert("RGBA")
    tiles.append(Image.alpha_composite(checkerboard(cutout.size), cutout))
    tiles.append(decoded(run(photo, background="blur", blur_radius=20).files["composite.jpg"]))
    tiles.append(decoded(run(photo, background="#2f6fde").files["composite.jpg"]))
    tiles.append(decoded(run(photo, background_image=coffee, background="image").files["composite.jpg"]))
    size = 220
    strip = Image.new("RGB", (size * len(tiles) + 8 * (len(tiles) - 1), size), "white")
    for index, tile in enumerate(tiles):
        strip.paste(tile.convert("RGB").resize((size, size), Image.LANCZOS), (index * (size + 8), 0))
    strip.save(OUT / "effects.jpg", quality=85)


def edges(photo):
    """At 12 MP: the network's mask by nearest neighbour, the refined matte, and the cutout
    over black without and with decontamination, all on the same crop at the hair."""
    from workers import effects
    from workers.registry import get_model

    big = np.asarray(Image.fromarray(photo).resize((4032, 3024), Image.BICUBIC))
    model = get_model(MODEL)
    result = model.infer(big, {"class_ids": [15]})
    coarse = effects.coarse_alpha("semantic", result, *big.shape[:2])
    refined = effects.refine(big, coarse, 513)
    cleaned = effects.decontaminate(big, refined)
    box = (990, 200, 1390, 500)  # her hair against the flag
    crop = (slice(box[1], box[3]), slice(box[0], box[2]))

    def over_black(rgb, alpha):
        return Image.fromarray(np.rint(rgb[crop] * alpha[crop][..., None]).astype(np.uint8))

    panels = [
        ("nearest neighbour", Image.fromarray((coarse[crop] * 255).astype(np.uint8)).convert("RGB")),
        ("refined matte", Image.fromarray(np.rint(refined[crop] * 255).astype(np.uint8)).convert("RGB")),
        ("cut out, raw colours", over_black(big.astype(np.float32), refined)),
        ("decontaminated", over_black(cleaned.astype(np.float32), refined)),
    ]
    width = 300
    height = round(width * (box[3] - box[1]) / (box[2] - box[0]))
    sheet = Image.new("RGB", (width * len(panels) + 8 * (len(panels) - 1), height + 22), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (label, panel) in enumerate(panels):
        x = index * (width + 8)
        sheet.paste(panel.resize((width, height), Image.NEAREST), (x, 22))
        draw.text((x + 4, 4), label, fill="black")
    sheet.save(OUT / "edges.png", optimize=True)


if __name__ == "__main__":
    main()
