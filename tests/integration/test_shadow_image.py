"""The sentiment model's serving image with a challenger beside it (issue 18), built for real: the
health-check stage, run as the action runs it (``mlops health-check``), starts it with
SHADOW_RATIO=1, and reports the challenger's agreement with the champion, which must equal what
the two models' own predictions on the probe rows give; the image also answers a CANARY_RATIO=1
request from the challenger, read-only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import numpy as np
import pandas as pd

from conftest import serve_image
from mlops_actions.core.paths import resource
from mlops_actions.stages.render_dockerfile import render

CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"


def test_health_check_reports_the_challengers_agreement(fetched, docker_engine, tmp_path):
    import mlflow
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    # a deliberately weak challenger: naive Bayes on 10 synthetic reviews with random labels
    rng = np.random.default_rng(18)
    words = ["great", "awful", "fast", "slow", "battery", "screen", "love", "broken", "sync", "login"]
    train = pd.DataFrame({"review_text": [" ".join(rng.choice(words, 4)) for _ in range(10)]})
    labels = rng.integers(0, 2, len(train))
    challenger = make_pipeline(ColumnTransformer([("c", CountVectorizer(), "review_text")]), MultinomialNB())
    challenger.fit(train, labels)
    mlflow.sklearn.save_model(challenger, str(tmp_path / "challenger"), input_example=train.head(2))

    res = render(fetched.model_path, tmp_path / "ctx", ca_bundle=CA, runtime="native", version="3.0.0",
                 challenger_dir=str(tmp_path / "challenger"))
    assert res.challenger["runtime"] == "native"
    tag = "mlops-actions-test/sentiment-shadow:latest"
    docker_engine.images.build(path=str(res.context), tag=tag, rm=True)
    try:
        example = json.loads((fetched.model_path / "serving_input_example.json").read_text())["dataframe_split"]
        rows = pd.DataFrame(example["data"], columns=example["columns"])
        champion = mlflow.pyfunc.load_model(str(fetched.model_path)).predict(rows)
        agree = int(np.sum(np.asarray(champion) == challenger.predict(rows)))
        out, summary = tmp_path / "out.txt", tmp_path / "summary.md"
        env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary),
               "PYTHONPATH": str(resource("scripts"))}
        cmd = [sys.executable, "-m", "mlops_actions", "health-check", "--image", tag, "--pull", "false", "--timeout", "120"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
        assert outputs["challenger-agreement"] == str(round(agree / len(rows), 6)), (outputs, agree, len(rows))
        text = summary.read_text()
        assert f"the challenger agrees on {5 * agree} of {5 * len(rows)} rows" in text and "| challenger |" in text
        print(f"\n[shadow image] agreement {agree}/{len(rows)} on the example; health-check said {outputs}")

        with serve_image(docker_engine, tag, read_only=True, environment={"CANARY_RATIO": "1"}) as url:
            req = urllib.request.Request(f"{url}/invocations", data=json.dumps({"dataframe_split": example}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert resp.headers["X-Model-Role"] == "challenger"
                assert json.loads(resp.read())["predictions"] == challenger.predict(rows).tolist()
    finally:
        docker_engine.images.remove(tag, force=True, noprune=True)
