"""A Hugging Face transformers model through ``runtime: auto``: marked ``transformers``, outside the
default suite's reach (it skips where transformers, tokenizers or torch is not installed, as in CI).

No hub here: the model is a tiny BERT text classifier built from a config with random weights, its
tokenizer a WordLevel one built locally with the ``tokenizers`` library. mlflow.transformers logs it;
render-dockerfile picks the generic pyfunc path (no lean loader for flavor 'transformers') and says
why; the image's server, run as a local process on the rendered context, answers as
``mlflow.pyfunc`` does (labels equal, scores within 1e-6).

Run: ``pip install transformers`` and a CPU torch, then
``pytest -m transformers tests/integration/test_transformers.py``.
"""

from __future__ import annotations

import json
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import post_invocations, serve_locally
from mlops_actions.stages.render_dockerfile import render

pytestmark = pytest.mark.transformers
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad", "movie", "great", "awful", "plot", "the", "a", "was"]
HELD_OUT = ["good movie", "the plot was awful", "a great great movie", "bad", "unseen words here", "movie movie"]


@pytest.fixture(scope="module")
def text_model(tmp_path_factory) -> Path:
    """A 1-layer BERT (hidden size 16) for 2 labels, random weights (seeded), with a WordLevel tokenizer."""
    import mlflow.transformers

    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    config = transformers.BertConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
        id2label={0: "NEG", 1: "POS"},
        label2id={"NEG": 0, "POS": 1},
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    path = tmp_path_factory.mktemp("transformers") / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.transformers.save_model(
            {"model": model, "tokenizer": fast},
            str(path),
            task="text-classification",
            input_example=["good movie", "awful plot"],
            # explicit: mlflow's inferred list asks torchvision's version, which a text model does not need
            pip_requirements=[f"transformers=={transformers.__version__}", f"torch=={torch.__version__}"],
        )
    return path


def test_transformers_model_renders_pyfunc_and_the_server_answers_like_mlflow(text_model, tmp_path):
    import mlflow
    import mlflow.pyfunc

    res = render(text_model, tmp_path / "ctx", runtime="auto")
    assert res.runtime == "pyfunc" and res.flavor == "transformers"
    assert res.runtime_reason == (
        f"no lean loader for flavor 'transformers': mlflow.pyfunc with mlflow-skinny {mlflow.__version__}"
    )
    reqs = (res.context / "requirements.txt").read_text().splitlines()
    assert f"mlflow-skinny=={mlflow.__version__}" in reqs and f"transformers=={transformers.__version__}" in reqs
    info = json.loads((res.context / "model-info.json").read_text())
    assert info["runtime"] == "pyfunc" and info["flavor"] == "transformers"

    want = mlflow.pyfunc.load_model(str(text_model)).predict(HELD_OUT)
    proc, url = serve_locally(res.context / "model", res.context / "model-info.json", workers=1, timeout=180)
    try:
        health = json.loads(urllib.request.urlopen(url + "/health", timeout=5).read())
        assert health["runtime"] == "pyfunc" and health["flavor"] == "transformers"
        for payload in ({"inputs": HELD_OUT}, {"instances": HELD_OUT}):
            status, got = post_invocations(url, payload)
            assert status == 200, got
            rows = got["predictions"]
            assert [r["label"] for r in rows] == want["label"].tolist()
            np.testing.assert_allclose([r["score"] for r in rows], want["score"].to_numpy(), rtol=0, atol=1e-6)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
