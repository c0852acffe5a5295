"""The serving image's requirements derived from the model's."""

import pytest

from mlops_actions.stages.render_dockerfile import serving_requirements
from mlops_actions.core.errors import InputError


def _reqs(tmp_path, text):
    (tmp_path / "requirements.txt").write_text(text)
    return serving_requirements(tmp_path, "sklearn")


def test_requirements_drop_mlflow_and_add_server_needs(tmp_path):
    reqs = _reqs(tmp_path, "mlflow==3.17.2\nscikit-learn==1.9.1\ncloudpickle==3.1.2\n")
    assert "scikit-learn==1.9.1" in reqs and not any(r.startswith("mlflow") for r in reqs)
    assert {"pandas", "numpy", "pyyaml"} <= set(reqs)


def test_tensorflow_cpu_wins_over_tensorflow(tmp_path):
    (tmp_path / "requirements.txt").write_text("tensorflow==2.20.0\ntensorflow-cpu==2.20.0\n")
    reqs = serving_requirements(tmp_path, "tensorflow")
    assert "tensorflow-cpu==2.20.0" in reqs and "tensorflow==2.20.0" not in reqs


@pytest.mark.parametrize("line,needle", [
    ("--extra-index-url https://evil/simple", "pip option"),
    ("-e .", "pip option"),
    ("./wheels/x.whl", "local path or URL"),
    ("pkg @ file:///tmp/x", "local path or URL"),
    ("not a req !!", "not a valid requirement"),
])
def test_requirements_refused(tmp_path, line, needle):
    with pytest.raises(InputError, match=needle):
        _reqs(tmp_path, line + "\n")
