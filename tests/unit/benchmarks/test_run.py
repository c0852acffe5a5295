"""The benchmark's table, ratio and wrk-parsing code on tiny inputs (the benchmark itself only prints)."""

import importlib.util

from mlops_actions.core.paths import resource

spec = importlib.util.spec_from_file_location("bench_run", resource("benchmarks") / "run.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_ratio_and_verdicts():
    assert bench.ratio(50, 100) == 0.5 and bench.ratio(None, 3) is None and bench.ratio(1, 0) is None
    assert bench.verdict("size_mb", "sentiment", 0.4).startswith("met")
    assert bench.verdict("size_mb", "rice", 0.4).startswith("missed")
    assert bench.verdict("rps_1", "rice", 2.5).startswith("met")
    assert bench.verdict("rps_1", "rice", 1.5).startswith("missed")
    assert bench.verdict("cold_build_s", "rice", 0.9) == "–" and bench.verdict("start_s", "rice", None) == "n/a"


def test_table_rows_and_ratios():
    results = {"sentiment": {"mlflow": {"size_mb": 1000.0, "rps_1": 100.0, "p99_1_ms": 40.0},
                             "ours": {"runtime": "onnx", "size_mb": 300.0, "rps_1": 450.0, "p99_1_ms": 10.0}}}
    text = bench.table(results)
    lines = text.splitlines()
    assert lines[0].startswith("| model | metric |") and len(lines) == 2 + 3
    assert "| sentiment (onnx) | image size (MB) | 1000 | 300 | 0.30× | met (≤ 0.5×) |" in lines
    assert "| sentiment (onnx) | req/s @8, 1 row (req/s) | 100 | 450 | 4.50× | met (≥ 2×) |" in lines


def test_parse_wrk_output():
    out = """Running 10s test @ http://127.0.0.1:1/invocations
  Latency Distribution
     50%    2.10ms
     99%   12.50ms
  12000 requests in 10.00s, 2.00MB read
  Socket errors: connect 0, read 0, write 0, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:   1200.50
"""
    assert bench.parse_wrk(out) == {"rps": 1200.5, "p99_ms": 12.5, "non2xx": 3, "timeouts": 2}
    assert bench.parse_wrk("     99%    1.20s\nRequests/sec: 2.0\n")["p99_ms"] == 1200.0
    nothing = "     99%    0.00us\n  0 requests in 10.00s, 0B read\nRequests/sec: 0.00\n"
    assert bench.parse_wrk(nothing)["p99_ms"] is None
    assert bench.median([3, None, 1, 2]) == 2 and bench.median([]) is None


def test_flavor_table_one_row_per_model_with_the_runtime_and_ratios():
    results = {
        "xgboost": {"mlflow": {"size_mb": 1500.0, "start_s": 8.0, "rps_1": 100.0},
                    "ours": {"runtime": "native", "size_mb": 300.0, "start_s": 1.0, "rps_1": 800.0}},
        "pyfunc": {"ours": {"runtime": "pyfunc", "size_mb": 400.0}},
    }
    lines = bench.flavor_table(results).splitlines()
    assert lines[0].startswith("| flavor | runtime chosen |") and len(lines) == 4
    assert lines[2] == ("| xgboost (XGBClassifier) | native | 1500 → 300 (0.20×) | 8.00 → 1.00 (0.12×) "
                        "| 100 → 800 (8.00×) |")
    assert lines[3] == "| python_function (custom, code_paths) | pyfunc | n/a → 400 | n/a → n/a | n/a → n/a |"


def test_unknown_model_is_one_line_naming_the_option(capsys, tmp_path):
    assert bench.main(["--models", "xgboost,nope", "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["--models: unknown name 'nope'; use a comma list of: sentiment, rice, xgboost, lightgbm, pyfunc"]
    assert not (tmp_path / "w").exists()


def test_unknown_system_or_peer_is_one_line_naming_the_option(capsys, tmp_path):
    assert bench.main(["--systems", "ours,seldon", "--work", str(tmp_path / "w")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "--systems: unknown name 'seldon'; use a comma list of: ours, previous, mlserver, mlflow"]
    assert bench.main(["--peer", "ours", "--table-only", "--work", str(tmp_path / "w")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "--peer: unknown name 'ours'; use a comma list of: mlflow, previous, mlserver"]
    assert not (tmp_path / "w").exists()


def test_table_against_the_previous_server_and_mlserver():
    results = {"sentiment": {"ours": {"runtime": "onnx", "size_mb": 330.0, "rps_1": 900.0, "p99_1_ms": 12.0},
                             "previous": {"size_mb": 325.0, "rps_1": 1000.0, "p99_1_ms": 10.0},
                             "mlserver": {"size_mb": 1100.0, "rps_1": 300.0}}}
    lines = bench.table(results, "previous").splitlines()
    assert lines[0] == "| model | metric | previous server | ours | ratio | target |"
    # issue 18: size and throughput within 10 % of the previous server; no target for p99
    assert "| sentiment (onnx) | image size (MB) | 325 | 330 | 1.02× | met (≤ 1.1×) |" in lines
    assert "| sentiment (onnx) | req/s @8, 1 row (req/s) | 1000 | 900 | 0.90× | met (≥ 0.9×) |" in lines
    assert "| sentiment (onnx) | p99 @8, 1 row (ms) | 10.0 | 12.0 | 1.20× | – |" in lines
    assert bench.verdict("rps_1", "sentiment", 0.85, "previous").startswith("missed")
    lines = bench.table(results, "mlserver").splitlines()
    assert lines[0] == "| model | metric | MLServer | ours | ratio | target |" and len(lines) == 2 + 3
    assert "| sentiment (onnx) | req/s @8, 1 row (req/s) | 300 | 900 | 3.00× | – |" in lines
    assert "| sentiment (onnx) | p99 @8, 1 row (ms) | n/a | 12.0 | n/a | – |" in lines


def test_peers_table_shows_every_measured_peer_with_ours_over_peer():
    results = {"sentiment": {"ours": {"size_mb": 330.0, "rps_1": 900.0},
                             "previous": {"size_mb": 325.0, "rps_1": 1000.0},
                             "mlserver": {"size_mb": 1100.0, "rps_1": 300.0}},
               "rice": {"ours": {"size_mb": 700.0}}}
    lines = bench.peers_table(results).splitlines()
    assert lines[0] == "| model | metric | ours | previous server | ours/previous | MLServer | ours/mlserver |"
    assert lines[1] == "|---|---|---|---|---|---|---|" and len(lines) == 4  # rice has no peer: no rows
    assert lines[2] == "| sentiment | image size (MB) | 330 | 325 | 1.02× | 1100 | 0.30× |"
    assert lines[3] == "| sentiment | req/s @8, 1 row (req/s) | 900 | 1000 | 0.90× | 300 | 3.00× |"
    only = bench.peers_table(results, ["mlserver"]).splitlines()
    assert only[0] == "| model | metric | ours | MLServer | ours/mlserver |"
    assert bench.peers_table({"rice": {"ours": {"size_mb": 1.0}}}) == ""


def test_same_predictions_labels_equal_numbers_within_tolerance():
    assert bench.same_predictions([1, 0, 1], [1, 0, 1]) and not bench.same_predictions([1, 0, 1], [1, 1, 1])
    assert not bench.same_predictions([1, 0], [1, 0, 1])
    assert bench.same_predictions([[0.2, 0.8]], [[0.20001, 0.79999]]) and not bench.same_predictions([[0.2]], [[0.3]])
    assert bench.same_predictions([{"label": "a", "p": 0.5}], [{"label": "a", "p": 0.5}])
    assert not bench.same_predictions(["a"], ["b"]) and not bench.same_predictions(["1"], [1])


def test_mlserver_context_serves_the_model_folder_with_the_mlflow_runtime(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "requirements.txt").write_text("mlflow==3.17.2\n\nscikit-learn==1.9.1\n")
    (tmp_path / "ca.crt").write_text("CA\n")
    monkeypatch.setattr(bench, "CA", str(tmp_path / "ca.crt"))
    ctx, model_copy = bench.mlserver_context("sentiment", model, tmp_path / "ctx")
    assert model_copy == ctx / "model" and (model_copy / "MLmodel").is_file()
    reqs = (ctx / "requirements.txt").read_text().splitlines()
    assert reqs == [*bench.MLSERVER, "mlflow==3.17.2", "scikit-learn==1.9.1"]
    settings = bench.json.loads((ctx / "model-settings.json").read_text())
    assert settings == {"name": "sentiment", "implementation": "mlserver_mlflow.MLflowRuntime",
                        "parameters": {"uri": "./model"}}
    dockerfile = (ctx / "Dockerfile").read_text()
    assert dockerfile.count(f"FROM {bench.BASE_IMAGE}") == 2 and 'CMD ["mlserver", "start", "/app"]' in dockerfile
    final = dockerfile.split(f"FROM {bench.BASE_IMAGE}\n", 1)[1]
    assert "ca-bundle" not in final and "PIP_CERT" not in final  # the CA stays in the builder stage
