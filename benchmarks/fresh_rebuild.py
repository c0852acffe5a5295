"""Rebuild on a fresh runner: push-image's registry build cache against no cache, same run.

A job on GitHub-hosted runners starts on an engine with no layers of the image: without a cache
source every run rebuilds the dependency layer (pip install of the model's requirements) from
nothing, however small the change. This measures, for the sentiment model (SYNTHETIC data, as in
benchmarks/run.py), with push-image's own code (stages/push_image.py) and a local registry:

* cold: the first build of the image on an engine that has none of its layers;
* fresh, no cache: a model-only change (a new file in the model folder) built on an engine that
  has none of its layers again: what every run on a fresh runner costs today;
* fresh, registry cache: the same change on the same kind of engine, with cache-from the registry
  cache the first run stored (cache-to ``type=registry,ref=<image>:buildcache,mode=max``): pulling
  the cache images counts.

"No layers" means every local image of this image's name and cache is removed, and the dependency
stage is made unique to this run (a comment in requirements.txt), so no other build on the engine
can lend a layer; the base image stays (a fresh runner pulls it from its registry in every case).
Prints the times and each as a ratio of the cold build (issue 16's goal: the cached rebuild at most
0.2x). No timing is asserted anywhere.

    bash benchmarks/run.sh ... is the serving benchmark; this one:
    .venv/bin/python benchmarks/fresh_rebuild.py [--repeats 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

USER, PASSWORD = "bench", "bench-" + uuid.uuid4().hex[:8]


def forget(engine, name: str) -> None:
    """Remove every local tag of ``name`` (their untagged parent layers go with them), then the
    untagged images a cached build restores beside them: run this on a machine whose dangling
    images may go."""
    for image in engine.images.list(name=name):
        for tag in image.tags:
            if tag.rsplit(":", 1)[0] == name:
                engine.images.remove(tag, force=True)
    engine.images.prune(filters={"dangling": True})


def timed_build(engine, context: Path, tag: str, cache_from: list[str] | None = None) -> tuple[float, int, int]:
    """(seconds, steps, steps from cache) of one build with push-image's build()."""
    from mlops_actions.stages import push_image as stage

    log: list[str] = []
    started = time.monotonic()
    stage.build(engine, context, {}, "", cache_from=cache_from, tag=tag, quiet=True, log=log)
    seconds = time.monotonic() - started
    steps = sum(1 for line in log if stage._STEP.match(line))
    return seconds, steps, sum(1 for line in log if line.strip() == "---> Using cache")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of the two fresh rebuilds (median)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)

    import run as bench  # benchmarks/run.py: the same model and render as the serving benchmark

    from mlops_actions.core import local_services
    from mlops_actions.core.docker import engine as docker_engine
    from mlops_actions.stages import push_image as stage

    engine = docker_engine()
    model, _held = bench.sentiment_model(args.work)
    scratch = Path(tempfile.mkdtemp(prefix="fresh-rebuild-"))
    registry = local_services.start_registry(scratch / "registry", USER, PASSWORD)
    host = registry.url.removeprefix("http://")
    engine.login(USER, PASSWORD, registry=host)
    unique = uuid.uuid4().hex[:10]
    name = f"{host}/bench/fresh-{unique}"
    cache = f"{name}:buildcache"
    results: dict = {"rounds": []}
    try:
        work_model = scratch / "model"
        import shutil

        shutil.copytree(model, work_model)
        first, _runtime, _reason = bench.ours_context(work_model, scratch / "ctx-first", None, "auto")
        reqs = (first / "requirements.txt").read_text() + f"# fresh-rebuild benchmark {unique}\n"
        (first / "requirements.txt").write_text(reqs)
        forget(engine, name)
        results["cold_s"], results["steps"], cold_hits = timed_build(engine, first, f"{name}:cold")
        print(f"cold build: {results['cold_s']:.1f} s ({cold_hits} of {results['steps']} steps from cache)", flush=True)
        # the first run stores the cache the way the pipeline does (build from local layers, push)
        pushed = stage.push_image(stage.PushRequest(
            context=first, image=name, version="1.0.0", username=USER, password=PASSWORD, smoke_test=False,
            ref="refs/heads/main", sha="0" * 40, default_branch="main",
            cache_to=[f"type=registry,ref={cache},mode=max"]))
        assert pushed.cache and pushed.cache.pushed == [cache, f"{cache}-builder"], pushed.cache
        for n in range(args.repeats):
            bench.touch_model(work_model)  # a model-only change
            ctx, _runtime, _reason = bench.ours_context(work_model, scratch / f"ctx-{n}", None, "auto")
            (ctx / "requirements.txt").write_text(reqs)
            row: dict = {}
            for mode in (("none", "cache") if n % 2 == 0 else ("cache", "none")):
                forget(engine, name)
                started = time.monotonic()
                pulled: list[str] = []
                if mode == "cache":
                    pulled = stage.pull_cache(engine, [stage.CacheRef(cache, "max")], ["builder"], PASSWORD).pulled
                seconds, steps, hits = timed_build(engine, ctx, f"{name}:round{n}-{mode}", cache_from=pulled)
                row[mode] = {"seconds": time.monotonic() - started, "build_s": seconds, "cached_steps": hits,
                             "steps": steps, "pulled": pulled}
                print(f"round {n + 1}, fresh engine, {'registry cache' if mode == 'cache' else 'no cache'}: "
                      f"{row[mode]['seconds']:.1f} s ({hits} of {steps} steps from cache)", flush=True)
            results["rounds"].append(row)
    finally:
        forget(engine, name)
        registry.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    cold = results["cold_s"]
    none = statistics.median(r["none"]["seconds"] for r in results["rounds"])
    cached = statistics.median(r["cache"]["seconds"] for r in results["rounds"])
    results |= {"fresh_no_cache_s": none, "fresh_cache_s": cached}
    print("\n| fresh engine (no local layers) | seconds | × cold build |\n|---|---|---|")
    print(f"| cold build | {cold:.1f} | 1.00× |")
    print(f"| model-only change, no cache | {none:.1f} | {none / cold:.2f}× |")
    print(f"| model-only change, registry cache (pull included) | {cached:.1f} | {cached / cold:.2f}× "
          f"(goal ≤ 0.2×: {'met' if cached / cold <= 0.2 else 'missed'}) |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
