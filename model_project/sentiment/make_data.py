"""Generate a SYNTHETIC labelled review CSV (app-store style) for demos and tests.

The rows are made up from word lists: they are not real reviews and say nothing about any app.
Columns: review_text, rating (1-5). Usage: python make_data.py OUT.csv [--rows N] [--seed S]
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

POSITIVE = ["love", "great", "excellent", "smooth", "helpful", "fast", "beautiful", "reliable", "intuitive", "awesome", "perfect", "handy"]
NEGATIVE = ["crashes", "slow", "useless", "buggy", "annoying", "broken", "terrible", "laggy", "confusing", "awful", "freezes", "ads"]
NEUTRAL = ["app", "update", "feature", "screen", "login", "design", "version", "phone", "sync", "notifications", "menu", "settings"]
OPENERS = ["", "honestly ", "after the update ", "so far ", "overall ", "i think "]
TEMPLATES = [
    "{o}the {n} is {w1} and {w2}",
    "{o}{w1} {n}, really {w2}",
    "{o}this {n} feels {w1}; the {n2} is {w2}",
    "{o}{w1}! {w2} {n} every time",
]


def review(rng: random.Random, rating: int) -> str:
    if rating >= 4:
        pool, other = POSITIVE, NEGATIVE
    elif rating <= 2:
        pool, other = NEGATIVE, POSITIVE
    else:
        pool, other = POSITIVE + NEGATIVE, []
    words = [rng.choice(pool), rng.choice(pool)]
    if other and rng.random() < 0.12:  # some noise: a word from the other side
        words[1] = rng.choice(other)
    tpl = rng.choice(TEMPLATES)
    return tpl.format(o=rng.choice(OPENERS), n=rng.choice(NEUTRAL), n2=rng.choice(NEUTRAL), w1=words[0], w2=words[1])


def generate(path: Path, rows: int = 1200, seed: int = 7) -> Path:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review_text", "rating"])
        for _ in range(rows):
            rating = rng.choices([1, 2, 3, 4, 5], weights=[2, 1, 1, 2, 4])[0]
            writer.writerow([review(rng, rating), rating])
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--rows", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    print(generate(args.out, args.rows, args.seed))
