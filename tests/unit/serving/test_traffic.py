"""A challenger beside the champion (issue 18): render-dockerfile bakes both into one context, the
server (a real gunicorn process, no Docker) answers from the champion and scores a SHADOW_RATIO
share with the challenger too, or answers a CANARY_RATIO share from the challenger, and /monitoring
and /metrics count agreement and per-model latency exactly. The image-level check (the built image
through the health-check stage) is in tests/integration/test_shadow_image.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import served_locally
from mlops_actions.core.paths import resource
from mlops_actions.serving.server import _quantile, agreement

WORDS_POS, WORDS_NEG = ["great", "love", "fast", "nice", "fine"], ["awful", "slow", "crashes", "broken", "fine"]


def _reviews(n: int, seed: int) -> pd.DataFrame:
    """Synthetic reviews (no data set is downloaded): four words from one side, "fine" on both."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = [" ".join(rng.choice(WORDS_POS if y else WORDS_NEG, 4)) + " phone" for y in labels]
    return pd.DataFrame({"review_text": texts, "label": labels})


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """A champion (TF-IDF + LogisticRegression) and a weaker challenger (word counts + naive Bayes
    fitted on a small, noisy sample), so they disagree on some rows; both saved by MLflow."""
    import mlflow
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    root = tmp_path_factory.mktemp("traffic")
    train = _reviews(300, 1)
    champion = make_pipeline(
        ColumnTransformer([("t", TfidfVectorizer(), "review_text")]), LogisticRegression(max_iter=500)
    ).fit(train[["review_text"]], train["label"])
    noisy = _reviews(12, 2)
    noisy["label"] = np.random.default_rng(3).integers(0, 2, len(noisy))
    challenger = make_pipeline(ColumnTransformer([("c", CountVectorizer(), "review_text")]), MultinomialNB()).fit(
        noisy[["review_text"]], noisy["label"]
    )
    example = train[["review_text"]].head(2)
    mlflow.sklearn.save_model(champion, str(root / "champion"), input_example=example)
    mlflow.sklearn.save_model(challenger, str(root / "challenger"), input_example=example)
    held = _reviews(40, 9)[["review_text"]]
    want = {"champion": champion.predict(held).tolist(), "challenger": challenger.predict(held).tolist()}
    assert want["champion"] != want["challenger"], "the fixture needs models that disagree somewhere"
    return root, held, want


def _render(root: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """``mlops render-dockerfile`` as the action runs it, with the challenger beside the champion."""
    out, ctx = tmp_path / "out.txt", tmp_path / "ctx"
    env = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "PYTHONPATH": str(resource("scripts")),
    }
    cmd = [sys.executable, "-m", "mlops_actions", "render-dockerfile", "--model-dir", str(root / "champion")]
    cmd += ["--output-dir", str(ctx), "--runtime", "native", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env), ctx, out


@pytest.fixture(scope="module")
def context(two_models, tmp_path_factory):
    root, _, _ = two_models
    tmp = tmp_path_factory.mktemp("ctx")
    proc, ctx, out = _render(root, tmp, "--challenger-dir", str(root / "challenger"))
    assert proc.returncode == 0, proc.stderr
    return ctx, out.read_text(), (tmp / "summary.md").read_text()


def _post(url: str, rows: pd.DataFrame) -> tuple[list, str]:
    body = json.dumps({"dataframe_split": {"columns": ["review_text"], "data": rows.values.tolist()}}).encode()
    req = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["predictions"], resp.headers.get("X-Model-Role", "")


def _monitoring(url: str) -> dict:
    return json.loads(urllib.request.urlopen(f"{url}/monitoring", timeout=5).read())


def test_render_bakes_the_challenger_beside_the_champion(context):
    ctx, outputs, summary = context
    info = json.loads((ctx / "model-info.json").read_text())
    ch = info["challenger"]
    assert ch["runtime"] == "native" and ch["flavor"] == "sklearn" and ch["path"] == "challenger"
    assert (ctx / "challenger" / "MLmodel").is_file() and (ctx / "model" / "MLmodel").is_file()
    assert ch["model_sha256"] != info["model_sha256"]
    dockerfile = (ctx / "Dockerfile").read_text()
    assert "COPY challenger/ /app/challenger/" in dockerfile and "challenger.onnx" not in dockerfile
    assert "io.github.mlops-actions.challenger.model-sha256" in dockerfile
    reqs = (ctx / "requirements.txt").read_text().split()
    assert len(reqs) == len({r.split("=")[0] for r in reqs})  # one line per package for both models
    assert "challenger-runtime=native" in outputs
    assert "challenger beside it" in summary and "SHADOW_RATIO" in summary


def test_shadow_answers_from_the_champion_and_counts_agreement_exactly(context, two_models):
    ctx, _, _ = context
    _, held, want = two_models
    with served_locally(ctx / "model", ctx / "model-info.json", env={"SHADOW_RATIO": "1"}) as url:
        sends = 6
        for _ in range(sends):
            got, role = _post(url, held)
            assert got == want["champion"] and role == "champion"
        deadline = time.monotonic() + 20
        while _monitoring(url)["shadow"]["requests"]["scored"] < sends and time.monotonic() < deadline:
            time.sleep(0.1)
        report = _monitoring(url)
        agree = sum(a == b for a, b in zip(want["champion"], want["challenger"], strict=True))
        assert report["shadow"] == {
            "requests": {"scored": sends, "dropped": 0, "error": 0},
            "rows": sends * len(held),
            "agreeing_rows": sends * agree,
            "agreement": round(agree / len(held), 6),
        }
        assert report["champion"]["answers"] == sends and report["challenger"]["answers"] == 0
        assert report["challenger"]["scorings"] == sends and report["shadow_ratio"] == 1.0
        assert report["champion"]["latency_ms"]["p50"] > 0 and report["challenger"]["latency_ms"]["p99"] > 0
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        assert f"mlserve_shadow_agreeing_rows_total {sends * agree}" in metrics
        assert f'mlserve_model_latency_seconds_count{{model="challenger"}} {sends}' in metrics
        print(f"\n[shadow] challenger agrees on {agree}/{len(held)} rows; {report}")


def test_canary_answers_its_share_from_the_challenger(context, two_models):
    ctx, _, _ = context
    _, held, want = two_models
    with served_locally(ctx / "model", ctx / "model-info.json", env={"CANARY_RATIO": "0.5"}) as url:
        roles = []
        for _ in range(120):
            got, role = _post(url, held.head(5))
            assert got == want[role][:5]  # each answer is the model's that the header names
            roles.append(role)
        share = roles.count("challenger") / len(roles)
        report = _monitoring(url)
        assert report["challenger"]["answers"] == roles.count("challenger")
        assert report["champion"]["answers"] == roles.count("champion")
        assert 0.3 < share < 0.7, share  # binomial(120, 0.5): outside this in 1 run of ~10^4
        assert report["shadow"]["requests"]["scored"] == 0  # canary answers are not shadowed


@pytest.mark.parametrize(
    ("env", "named"),
    [({"SHADOW_RATIO": "2"}, "SHADOW_RATIO='2' is not a ratio"), ({"CANARY_RATIO": "half"}, "CANARY_RATIO='half'")],
)
def test_bad_ratio_stops_the_server_with_one_line(context, tmp_path, env, named):
    ctx, _, _ = context
    cmd = [sys.executable, "-m", "mlops_actions.serving.server", "--model", str(ctx / "model")]
    cmd += ["--port", "0", "--info", str(ctx / "model-info.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert named in proc.stderr and "fix: set" in proc.stderr


def test_ratio_without_a_challenger_is_refused(two_models, tmp_path):
    root, _, _ = two_models
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"flavor": "sklearn", "runtime": "native"}))
    cmd = [sys.executable, "-m", "mlops_actions.serving.server", "--model", str(root / "champion")]
    env = {**os.environ, "SHADOW_RATIO": "0.1"}
    proc = subprocess.run([*cmd, "--port", "0", "--info", str(info)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "no challenger model; fix: render it with challenger-dir, or unset SHADOW_RATIO" in proc.stderr


def test_a_challenger_pinning_another_version_is_one_line_and_nothing_written(two_models, tmp_path):
    import shutil

    root, _, _ = two_models
    other = tmp_path / "other"
    shutil.copytree(root / "challenger", other)
    (other / "requirements.txt").write_text("mlflow\nscikit-learn==1.0.2\n")
    proc, ctx, _ = _render(root, tmp_path, "--challenger-dir", str(other))
    errors = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if line.startswith("::error")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stdout + proc.stderr
    assert "challenger-dir" in errors[0] and "scikit-learn==1.0.2" in errors[0] and "same scikit-learn" in errors[0]
    assert not ctx.exists()


def test_agreement_compares_labels_probabilities_records_and_numbers():
    assert agreement([0, 1, 1], [0, 0, 1]) == (3, 2)
    assert agreement([[0.9, 0.1], [0.2, 0.8]], [[0.6, 0.4], [0.7, 0.3]]) == (2, 1)  # argmax
    assert agreement([{"label": "a"}, {"label": "b"}], [{"label": "a"}, {"label": "a"}]) == (2, 1)
    assert agreement([100.0, 5.0], [100.5, 6.0]) == (2, 1)  # regression: within 1 %
    assert agreement({"y": [1, 2]}, {"y": [1, 3]}) == (2, 1)
    assert agreement([1, 2], [1]) == (2, 0)  # a challenger answering another shape agrees nowhere


def test_quantile_interpolates_within_the_bucket():
    edges = (0.01, 0.1, 1.0)
    assert _quantile([0, 10, 0, 0], edges, 0.5) == 55.0  # half-way through (10 ms, 100 ms]
    assert _quantile([10, 0, 0, 0], edges, 0.99) == pytest.approx(9.9)
    assert _quantile([0, 0, 0, 4], edges, 0.5) == 1000.0  # +Inf bucket: the last finite edge
    assert _quantile([0, 0, 0, 0], edges, 0.5) is None
