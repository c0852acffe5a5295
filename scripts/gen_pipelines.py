#!/usr/bin/env python3
"""Render the flagship pipelines as presets of the one reusable pipeline.

``.github/workflows/ml-pipeline.yml`` holds the job graph, for any MLflow project. The flagship
pipelines ``.github/workflows/<name>-pipeline.yml`` are generated here from its inputs, secrets and
outputs: each declares the same interface with the project's defaults (PRESETS below) and has one
job that calls ml-pipeline.yml with every input passed through, so a fix to the graph lands in one
file and the flagships cannot drift from it. The reference to ml-pipeline.yml takes the ref its own
stage-action references carry (``@v1`` on main, ``@vX.Y.Z`` in a release commit), so a release
rewrites both alike (scripts/check_refs.py).

    python scripts/gen_pipelines.py           # write the workflows
    python scripts/gen_pipelines.py --check   # exit 1 when a committed workflow is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path(".github") / "workflows" / "ml-pipeline.yml"
REPO = "mlops-actions/mlops-actions"

PRESETS: dict[str, dict[str, object]] = {
    "sentiment": {
        "title": "review-sentiment model (scikit-learn TF-IDF + logistic regression, DVC-versioned data)",
        "defaults": {
            "project-path": "model_project/sentiment",
            "name": "sentiment",
            "data-path": "model_project/sentiment/data/reviews.csv",
            "metric": "test_accuracy",
            "shadow-previous-champion": True,
        },
    },
    "rice": {
        "title": "rice variety image classifier (TensorFlow/Keras CNN)",
        "defaults": {
            "project-path": "model_project/rice",
            "name": "rice",
            "metric": "test_accuracy",
        },
    },
}
# what the pipeline's jobs ask for; a called workflow's jobs get no more than its caller job holds
PERMISSIONS = (
    ("contents", "write", "the propose job pushes the bot branch"),
    ("pull-requests", "write", "the propose job opens or updates the pull request"),
    ("packages", "write", "the image and promote jobs push the serving image (GHCR)"),
)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return _quote(str(value))


def source_ref(text: str) -> str:
    """The ref ml-pipeline.yml references its own stage actions at."""
    refs = set(re.findall(re.escape(REPO) + r"/actions/[\w-]+@([\w./-]+)", text))
    if len(refs) != 1:
        raise SystemExit(f"{SOURCE}: its stage actions are referenced at {sorted(refs) or 'no ref'}; expected one ref")
    return refs.pop()


def render(name: str, source_text: str) -> str:
    preset = PRESETS[name]
    defaults: dict[str, object] = dict(preset["defaults"])  # type: ignore[call-overload]
    doc = yaml.safe_load(source_text)
    call = doc.get("on", doc.get(True))["workflow_call"]  # YAML 1.1 reads a bare `on` as true
    unknown = set(defaults) - set(call["inputs"])
    if unknown:
        raise SystemExit(f"preset {name}: {sorted(unknown)} are not inputs of {SOURCE}")
    ref = source_ref(source_text)
    out = [
        f"# GENERATED from {SOURCE} by scripts/gen_pipelines.py; do not edit.",
        "#",
        f"# The {preset['title']}:",
        "# ml-pipeline.yml (the job graph, for any MLflow project) with this project's defaults. Every",
        "# input, secret and output of ml-pipeline.yml is here, passed through as it is (secrets by",
        "# name: the called pipeline gets those it declares, never all of the caller's). Adopters call it by",
        "# reference after copying the project into their repository:",
        f"#   uses: {REPO}/.github/workflows/{name}-pipeline.yml@{ref}",
        f"name: {name}-pipeline",
        "",
        "on:",
        "  workflow_call:",
        "    inputs:",
    ]
    for key, spec in call["inputs"].items():
        default = defaults.get(key, spec.get("default"))
        out += [f"      {key}:", f"        description: {_quote(spec['description'])}", f"        type: {spec['type']}"]
        if default is None:
            out.append("        required: true")
        else:
            out.append(f"        default: {_scalar(default)}")
    out.append("    secrets:")
    for key, spec in call["secrets"].items():
        out += [f"      {key}:", f"        description: {_quote(spec['description'])}", "        required: false"]
    out.append("    outputs:")
    for key, spec in call["outputs"].items():
        out += [
            f"      {key}:",
            f"        description: {_quote(spec['description'])}",
            f"        value: ${{{{ jobs.pipeline.outputs.{key} }}}}",
        ]
    out += [
        "",
        "permissions: {}",
        "",
        "jobs:",
        "  pipeline:",
        f"    uses: {REPO}/.github/workflows/ml-pipeline.yml@{ref}",
        "    permissions:",
        *(f"      {scope}: {level} # {why}" for scope, level, why in PERMISSIONS),
        "    with:",
        *(f"      {key}: ${{{{ inputs.{key} }}}}" for key in call["inputs"]),
        "    secrets:",
        *(f"      {key}: ${{{{ secrets.{key} }}}}" for key in call["secrets"]),
        "",
    ]
    return "\n".join(out)


def target(root: Path, name: str) -> Path:
    return root / ".github" / "workflows" / f"{name}-pipeline.yml"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report stale workflows")
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args(argv)
    source_text = (args.root / SOURCE).read_text(encoding="utf-8")
    stale = []
    for name in PRESETS:
        path, text = target(args.root, name), render(name, source_text)
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
