#!/usr/bin/env python3
"""Render the flagship reusable pipelines from one template.

``.github/workflows/<name>-pipeline.yml`` for each project below comes from
``templates/workflows/pipeline.yml.j2``, so the rice and sentiment pipelines chain the stages the
same way and a fix lands in both. The template uses ``[[ ]]`` / ``[% %]`` as Jinja delimiters so
that GitHub's ``${{ }}`` expressions pass through untouched.

    python scripts/gen_pipelines.py           # write the workflows
    python scripts/gen_pipelines.py --check   # exit 1 when a committed workflow is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "templates" / "workflows" / "pipeline.yml.j2"

PROJECTS = {
    "sentiment": {
        "title": "review-sentiment model (scikit-learn TF-IDF + logistic regression, DVC-versioned data)",
        "project": "model_project/sentiment",
        "params": "",
        "data": "model_project/sentiment/data/reviews.csv",
        "data_description": "Reviews CSV (review_text, rating) validated before training, relative to the workspace.",
        "metric": "test_accuracy",
        "drift": True,
    },
    "rice": {
        "title": "rice variety image classifier (TensorFlow/Keras CNN)",
        "project": "model_project/rice",
        "params": "",
        "data": "",
        "data_description": "Image folder in the Kaggle Rice Image Dataset layout (DIR/{train,val,test}/<class>/*.jpg), relative to the workspace; pass the same folder to the project as params data_dir=<path relative to project-path>.",
        "metric": "test_accuracy",
        "drift": False,
    },
}


def render(name: str) -> str:
    env = jinja2.Environment(
        variable_start_string="[[", variable_end_string="]]", block_start_string="[%", block_end_string="%]",
        comment_start_string="[#", comment_end_string="#]", undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, autoescape=False,
    )
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(p={"name": name, **PROJECTS[name]})


def target(root: Path, name: str) -> Path:
    return root / ".github" / "workflows" / f"{name}-pipeline.yml"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report stale workflows")
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args(argv)
    stale = []
    for name in PROJECTS:
        path, text = target(args.root, name), render(name)
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(str(path.relative_to(args.root)))
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(args.root)}")
    if stale:
        print("stale (run python scripts/gen_pipelines.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
