"""The benchmark's table, ratio and wrk-parsing code on tiny inputs (the benchmark itself only prints)."""

import importlib.util

from mlops_actions.core.paths import resource

spec = importlib.util.spec_from_file_location("bench_run", resource("benchmarks") / "run.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_ratio_and_verdicts():
    assert bench.ratio(50, 100) == 0.5 and bench.ratio(None, 3) is None and bench.ratio(1, 0) is None
    assert bench.verdict("size_mb", "sentiment", 0.4).startswith("met") and bench.verdict("size_mb", "rice", 0.4).startswith("missed")
    assert bench.verdict("rps_1", "rice", 2.5).startswith("met") and bench.verdict("rps_1", "rice", 1.5).startswith("missed")
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
    assert bench.parse_wrk("     99%    0.00us\n  0 requests in 10.00s, 0B read\nRequests/sec: 0.00\n")["p99_ms"] is None
    assert bench.median([3, None, 1, 2]) == 2 and bench.median([]) is None


def test_flavor_table_one_row_per_model_with_the_runtime_and_ratios():
    results = {
        "xgboost": {"mlflow": {"size_mb": 1500.0, "start_s": 8.0, "rps_1": 100.0},
                    "ours": {"runtime": "native", "size_mb": 300.0, "start_s": 1.0, "rps_1": 800.0}},
        "pyfunc": {"ours": {"runtime": "pyfunc", "size_mb": 400.0}},
    }
    lines = bench.flavor_table(results).splitlines()
    assert lines[0].startswith("| flavor | runtime chosen |") and len(lines) == 4
    assert lines[2] == "| xgboost (XGBClassifier) | native | 1500 → 300 (0.20×) | 8.00 → 1.00 (0.12×) | 100 → 800 (8.00×) |"
    assert lines[3] == "| python_function (custom, code_paths) | pyfunc | n/a → 400 | n/a → n/a | n/a → n/a |"


def test_unknown_model_is_one_line_naming_the_option(capsys, tmp_path):
    assert bench.main(["--models", "xgboost,nope", "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["--models: unknown model 'nope'; use a comma list of: sentiment, rice, xgboost, lightgbm, pyfunc"]
    assert not (tmp_path / "w").exists()
