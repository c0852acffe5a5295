"""SYNTHETIC rice-grain images in the layout of the Kaggle Rice Image Dataset.

THE IMAGES ARE SYNTHETIC. They are drawn here from a few numbers per class; they are not photos of
rice and say nothing about how a model does on real grains. They exist so the project trains, is
tested and can be served without downloading anything. For real data, download the Kaggle "Rice
Image Dataset" (Koklu et al., 75,000 photos of Arborio, Basmati, Ipsala, Jasmine and Karacadag
grains), split it into ``DATA/{train,val,test}/<class>/*.jpg`` and pass ``--data-dir DATA``.

Each image is one grain on a dark background, like the Kaggle photos: a soft-edged ellipse whose
length, width, colour and brightness are drawn from per-class ranges that overlap a little, at a
random angle and position, with shading, a darker germ spot, JPEG-visible noise and a slight blur.
Generation is deterministic for a given seed (numpy's PCG64; the same seed writes the same files).

    python make_data.py --out data --images-per-class 200 --size 64 --seed 42
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

CLASSES = ("Arborio", "Basmati", "Ipsala", "Jasmine", "Karacadag")
SPLITS = (("train", 0.7), ("val", 0.15), ("test", 0.15))


@dataclass(frozen=True)
class Grain:
    """Per-class ranges, lengths and widths as fractions of the image side."""

    length: tuple[float, float]
    width: tuple[float, float]
    rgb: tuple[int, int, int]  # mean colour of the grain
    rgb_jitter: int  # per-channel uniform jitter of that colour
    tip: float  # how pointed the ends are (0 = ellipse, larger = more tapered)


GRAINS = {
    # short, plump, chalky white
    "Arborio": Grain(length=(0.40, 0.50), width=(0.24, 0.30), rgb=(238, 226, 194), rgb_jitter=14, tip=0.0),
    # long and very slender, pale straw
    "Basmati": Grain(length=(0.66, 0.80), width=(0.10, 0.14), rgb=(224, 210, 170), rgb_jitter=14, tip=0.6),
    # large and wide, bright white
    "Ipsala": Grain(length=(0.60, 0.70), width=(0.26, 0.32), rgb=(246, 246, 240), rgb_jitter=8, tip=0.2),
    # medium-long, slim, greyish translucent
    "Jasmine": Grain(length=(0.54, 0.64), width=(0.15, 0.19), rgb=(198, 200, 196), rgb_jitter=14, tip=0.3),
    # small, roundish, tan-brown
    "Karacadag": Grain(length=(0.32, 0.40), width=(0.21, 0.27), rgb=(196, 160, 112), rgb_jitter=16, tip=0.0),
}


def draw_grain(rng: np.random.Generator, cls: str, size: int) -> np.ndarray:
    """One ``size`` x ``size`` RGB uint8 image of a grain of class ``cls``."""
    g = GRAINS[cls]
    half_len = rng.uniform(*g.length) * size / 2
    half_wid = rng.uniform(*g.width) * size / 2
    angle = rng.uniform(0, np.pi)
    margin = half_len * 0.75
    cx = rng.uniform(margin, size - margin)
    cy = rng.uniform(margin, size - margin)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = xx - cx, yy - cy
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / half_len  # along the grain, -1..1
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / half_wid  # across the grain
    # tapered ends: the half-width shrinks towards the tips
    taper = 1.0 - g.tip * np.clip(np.abs(u), 0, 1) ** 2
    r = np.sqrt(u**2 + (v / np.maximum(taper, 0.2)) ** 2)
    edge = 1.5 / max(half_wid, 1.0)  # about 1.5 px of soft edge
    alpha = np.clip((1.0 - r) / edge, 0.0, 1.0)

    base = np.array(g.rgb, np.float32) + rng.uniform(-g.rgb_jitter, g.rgb_jitter, 3).astype(np.float32)
    base *= rng.uniform(0.85, 1.08)  # lighting
    shade = 1.0 - 0.18 * np.clip(v, -1, 1) ** 2 - 0.08 * np.clip(u, -1, 1) ** 2  # rounded look
    grain = base[None, None, :] * shade[..., None]
    # a darker germ spot near one end
    germ_u = rng.choice([-0.8, 0.8])
    germ = np.exp(-(((u - germ_u) / 0.18) ** 2 + (v / 0.5) ** 2))
    grain *= (1.0 - 0.12 * germ)[..., None]

    background = rng.uniform(0, 18) + rng.normal(0, 3, (size, size, 1)).astype(np.float32)
    img = background * (1 - alpha[..., None]) + grain * alpha[..., None]
    img += rng.normal(0, rng.uniform(3, 9), img.shape).astype(np.float32)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    return np.asarray(out.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.7))))


def generate(out: Path, images_per_class: int = 200, size: int = 64, seed: int = 42, quality: int = 92) -> dict[str, int]:
    """Write ``images_per_class`` JPGs per class under ``out/{train,val,test}/<class>/``.

    Replaces ``out`` if it exists. Returns the number of files per split."""
    out = Path(out)
    if images_per_class < 7:
        raise ValueError("images_per_class must be at least 7 (one per split and class)")
    if out.exists():
        shutil.rmtree(out)
    counts = {name: 0 for name, _ in SPLITS}
    for index, cls in enumerate(CLASSES):
        rng = np.random.Generator(np.random.PCG64([seed, index]))
        n_val = max(1, round(images_per_class * SPLITS[1][1]))
        n_test = max(1, round(images_per_class * SPLITS[2][1]))
        n_train = images_per_class - n_val - n_test
        for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
            folder = out / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(draw_grain(rng, cls, size)).save(folder / f"{cls}_{split}_{i:05d}.jpg", quality=quality)
            counts[split] += n
    (out / "SYNTHETIC.txt").write_text(
        f"Synthetic rice-grain images generated by make_data.py (seed {seed}, {images_per_class} per class, "
        f"{size}px). Not real photos.\n",
        encoding="utf-8",
    )
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description="Generate SYNTHETIC rice-grain images in the Kaggle layout.")
    ap.add_argument("--out", default="data")
    ap.add_argument("--images-per-class", type=int, default=200)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    counts = generate(Path(args.out), args.images_per_class, args.size, args.seed)
    print(f"wrote SYNTHETIC images to {args.out}: {counts}")


if __name__ == "__main__":
    main()
