"""PREDICT_TIMEOUT (issue 18): a prediction that never returns is answered 504 DEADLINE_EXCEEDED at
once, counted in /metrics, and the worker holding the stuck thread is recycled (it stops accepting,
finishes its other requests, exits; gunicorn's master starts a fresh one). A real gunicorn process
(no Docker) serves a tiny native "sklearn" model whose predict() sleeps an hour for the input
"hang" and ``n`` seconds for "slow:n". The measured figures are printed (``-s``)."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import pickled_native_model, serve_locally
from mlops_actions.serving.watchdog import Watchdog

MODULE = "sleepy_model_w18"
SOURCE = '''
import time

import pandas  # noqa: F401 - imported in the master before the fork (preload): no worker's first request imports it


class Sleepy:
    """predict(): the length of each text; "hang" sleeps an hour, "slow:<seconds>" that long."""

    def predict(self, frame):
        out = []
        for text in frame["text"]:
            if text == "hang":
                time.sleep(3600)
            elif text.startswith("slow:"):
                time.sleep(float(text[5:]))
            out.append(len(text))
        return out
'''


@pytest.fixture(scope="module")
def sleepy(tmp_path_factory):
    """(model dir, model-info.json, PYTHONPATH holding the model's class)."""
    return pickled_native_model(tmp_path_factory.mktemp("sleepy"), MODULE, SOURCE, "Sleepy")


def _post(url: str, text: str, timeout: float = 30) -> tuple[int, dict, float]:
    body = json.dumps({"dataframe_split": {"columns": ["text"], "data": [[text]]}}).encode()
    req = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read()), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), time.monotonic() - started


def _metrics(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+) (\S+)$", text, re.M)}


def _children(pid: int) -> set[int]:
    """The worker processes of the server (gunicorn's master is the server process itself)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.add(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.stderr.read().decode(errors="replace") if proc.stderr else ""


def _wait_for(what, check, seconds: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"{what} not within {seconds}s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_hung_prediction_answers_504_at_once_and_its_worker_is_replaced(sleepy):
    model, info, path = sleepy
    env = {"PREDICT_TIMEOUT": "1", "PYTHONPATH": path}
    proc, url = serve_locally(model, info, workers=2, env=env)
    log = ""
    try:
        for text in ("ab", "abc", "abcd", "abcde"):  # before: every request answers
            assert _post(url, text)[:2] == (200, {"predictions": [len(text)]})
        _wait_for("both workers", lambda: len(_children(proc.pid)) == 2 and _metrics(url)["mlserve_workers"] == 2, 30)
        before = _children(proc.pid)
        m = _metrics(url)
        assert m["mlserve_prediction_timeouts_total"] == 0 and m["mlserve_worker_restarts_total"] == 0, m

        status, body, seconds = _post(url, "hang")
        answered = time.monotonic()
        assert status == 504, (status, body)
        assert body["error_code"] == "DEADLINE_EXCEEDED" and "PREDICT_TIMEOUT=1 s" in body["message"], body
        # not before the deadline, and long before the hour the model sleeps (slack for a loaded CI machine)
        assert 1.0 <= seconds < 8, f"the client waited {seconds:.2f}s for its 504 (PREDICT_TIMEOUT 1 s)"

        during = [_post(url, "x" * n) for n in range(1, 9)]  # while one worker recycles: no hang, no error
        assert [(s, b) for s, b, _ in during] == [(200, {"predictions": [n]}) for n in range(1, 9)], during
        assert max(t for _, _, t in during) < 8, during

        def replaced() -> bool:
            m = _metrics(url)
            pids = _children(proc.pid)
            return (
                m["mlserve_worker_restarts_total"] == 1
                and m["mlserve_workers"] == 2
                and len(pids) == 2
                and len(pids - before) == 1
            )

        _wait_for("a fresh worker in place of the stuck one", replaced, 15)
        replaced_after = time.monotonic() - answered
        m = _metrics(url)
        assert m["mlserve_prediction_timeouts_total"] == 1 and m["mlserve_stuck_predictions"] == 0, m
        assert m['mlserve_requests_total{path="/invocations",status="504"}'] == 1, m
        health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=5).read())
        assert health["status"] == "ok", health  # the stuck thread went with its worker
        after = [_post(url, "y" * n) for n in range(1, 9)]
        assert [(s, b) for s, b, _ in after] == [(200, {"predictions": [n]}) for n in range(1, 9)], after
        print(
            f"\n[watchdog] 504 after {seconds:.2f}s (PREDICT_TIMEOUT 1 s); during the recycle 8 requests 200 in "
            f"{max(t for _, _, t in during):.3f}s at most; worker {sorted(before - _children(proc.pid))} replaced "
            f"by {sorted(_children(proc.pid) - before)} {replaced_after:.2f}s after the 504; "
            f"{ {k: v for k, v in m.items() if 'timeout' in k or 'worker' in k or 'stuck' in k} }"
        )
    finally:
        log = _stop(proc)
    lines = [line for line in log.splitlines() if "PREDICT_TIMEOUT" in line]
    assert any("prediction past PREDICT_TIMEOUT=1s" in line and f"{MODULE}.py" in line for line in lines), log[-3000:]
    assert any("recycling" in line for line in lines), log[-3000:]


def test_the_recycled_worker_finishes_its_other_requests_and_reports_degraded(sleepy):
    """One worker: a slow request in flight beside the stuck one still answers 200, a kept-alive
    connection still gets /health (``degraded`` while the stuck thread lives), a new connection
    waits in the backlog for the fresh worker instead of failing."""
    model, info, path = sleepy
    env = {"PREDICT_TIMEOUT": "2", "PYTHONPATH": path, "GRACE_PERIOD": "10"}
    proc, url = serve_locally(model, info, workers=1, env=env)
    host, port = url.rsplit("/", 1)[1].split(":")
    try:
        kept = http.client.HTTPConnection(host, int(port), timeout=10)
        kept.request("GET", "/health")
        resp = kept.getresponse()
        assert (resp.status, json.loads(resp.read())["status"]) == (200, "ok")
        results: dict[str, tuple] = {}
        started = time.monotonic()
        hang = threading.Thread(target=lambda: results.__setitem__("hang", _post(url, "hang")))
        hang.start()
        time.sleep(0.5)
        slow = threading.Thread(target=lambda: results.__setitem__("slow", _post(url, "slow:1.8")))
        slow.start()  # in flight from +0.5 s to +2.3 s: across the watchdog's answer at +2 s
        hang.join(timeout=10)
        status, body, seconds = results["hang"]
        assert status == 504 and body["error_code"] == "DEADLINE_EXCEEDED", body
        assert 2.0 <= seconds < 9, seconds
        kept.request("GET", "/health")
        resp = kept.getresponse()
        health = json.loads(resp.read())
        assert resp.status == 200 and health["status"] == "degraded" and health["stuck_predictions"] == 1, health
        assert resp.getheader("Connection", "").lower() == "close"  # the recycling worker closes it after
        kept.close()
        status, body, ping = _post(url, "new")  # a new connection: the fresh worker answers it
        slow.join(timeout=10)
        assert results["slow"][:2] == (200, {"predictions": [len("slow:1.8")]}), results["slow"]
        assert status == 200 and ping < 5, (status, body, ping)
        m = _metrics(url)
        assert m["mlserve_worker_restarts_total"] == 1 and m["mlserve_workers"] == 1, m
        assert m["mlserve_prediction_timeouts_total"] == 1 and m["mlserve_stuck_predictions"] == 0, m
        print(
            f"\n[watchdog] 1 worker: 504 after {seconds:.2f}s (PREDICT_TIMEOUT 2 s); /health on a kept-alive "
            f"connection: {health['status']}; the slow request beside it {results['slow'][0]} in "
            f"{results['slow'][2]:.2f}s; a new connection answered {status} in {ping:.2f}s (fresh worker); "
            f"{time.monotonic() - started:.2f}s in all"
        )
    finally:
        _stop(proc)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("soon", "PREDICT_TIMEOUT='soon' is not a whole number; fix: set PREDICT_TIMEOUT to an integer >= 0"),
        ("-5", "PREDICT_TIMEOUT=-5 is below 0; fix: set PREDICT_TIMEOUT to an integer >= 0"),
    ],
)
def test_a_bad_predict_timeout_stops_the_server_with_one_line(sleepy, value, said):
    model, info, path = sleepy
    cmd = [sys.executable, "-m", "mlops_actions.serving.server", "--model", str(model), "--port", "0"]
    env = {**os.environ, "PYTHONPATH": path, "PREDICT_TIMEOUT": value}
    proc = subprocess.run([*cmd, "--info", str(info)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == said, (proc.returncode, proc.stderr)


def test_predict_timeout_0_watches_nothing():
    late: list = []
    off = Watchdog(0, lambda environ, thread: late.append(environ))
    token = off.start({})
    assert token is None and off.finish(token) and off._thread is None and not late


def test_the_watchdog_answers_a_late_prediction_once_and_never_an_early_one():
    late: list[tuple[dict, int]] = []
    dog = Watchdog(1, lambda environ, thread: late.append((environ, thread)))
    quick = dog.start({"name": "quick"})
    assert dog.finish(quick)  # returned in time: the caller answers
    stuck = dog.start({"name": "stuck"})
    started = time.monotonic()
    while not late and time.monotonic() - started < 3:
        time.sleep(0.01)
    waited = time.monotonic() - started
    assert [(e["name"], t) for e, t in late] == [("stuck", threading.get_ident())], late
    assert 1.0 <= waited < 2.0, waited  # it sleeps until the deadline, not in ticks
    assert not dog.finish(stuck)  # answered by the watchdog: the caller sends nothing
