"""``mlops``: one command per pipeline stage. Each command is a thin layer over a pure function:
it turns flags into a request, writes step outputs and a job-summary section, and turns every
failure into one ``::error::`` line and a non-zero exit."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from pathlib import Path

import click

from . import __version__, gha
from .errors import InputError, MlopsError

_BOOL = click.STRING  # checked by _flag inside the stage, so a bad value gets the one-line error


def _flag(value: str | bool, input_name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise InputError(input_name, f"'{value}' is not true or false", "write 'true' or 'false'")
    return text == "true"


class _Group(click.Group):
    """Usage errors (a missing required option, a non-number) also become one ::error:: line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            name = exc.ctx.info_name if exc.ctx else ctx.info_name
            if gha.in_actions():
                gha.error(exc.format_message(), title=f"mlops {name}")
            raise


def stage(fn):
    """Run a command body; outputs dict → $GITHUB_OUTPUT; errors → one line, exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            outputs = fn(*args, **kwargs)
        except MlopsError as exc:
            gha.error(exc.line(), title=f"mlops {click.get_current_context().info_name}")
            gha.add_summary(f"❌ **{click.get_current_context().info_name}**: {gha.md_inline(exc.line())}")
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - last resort: still one line, plus the trace for a bug report
            if os.environ.get("MLOPS_DEBUG") or os.environ.get("RUNNER_DEBUG") == "1":
                traceback.print_exc()
            gha.error(f"unexpected {exc.__class__.__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''} (re-run with MLOPS_DEBUG=1 for the trace)")
            sys.exit(1)
        if outputs:
            gha.set_outputs(outputs)

    return wrapper


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="mlops")
def main() -> None:
    """mlops-actions: train, fetch, propose, package and ship ML models from CI."""


def tracking_options(fn):
    fn = click.option("--dagshub-repo", default="", help="owner/name of a DagsHub repository; derives the tracking URI.")(fn)
    fn = click.option("--tracking-uri", default="", help="MLflow tracking URI; empty → sqlite store in the workspace.")(fn)
    return fn


def env_manager_option(fn):
    return click.option("--env-manager", default="uv", show_default=True,
                        help="How the project's environment is built: uv, virtualenv (MLflow's env managers) or local.")(fn)


@main.command()
@click.option("--project-path", default=".", show_default=True, help="Folder of the model project.")
@click.option("--entry-point", default="main", show_default=True, help="MLproject entry point.")
@click.option("--script", default="", help="A plain Python script to run instead of an MLproject entry point.")
@click.option("--params", default="", help="key=value lines passed as parameters.")
@click.option("--experiment", default="mlops-actions", show_default=True)
@click.option("--run-name", default="")
@click.option("--model-name", default="", help="Name of the logged model to report when the run logs several.")
@click.option("--autolog", type=_BOOL, default="true", show_default=True, help="mlflow.autolog() for plain scripts.")
@click.option("--reuse", type=_BOOL, default="false", show_default=True, help="Return a finished run with the same fingerprint instead of training again.")
@env_manager_option
@tracking_options
@stage
def train(project_path, entry_point, script, params, experiment, run_name, model_name, autolog, reuse, env_manager, tracking_uri, dagshub_repo):
    """Run a model project under MLflow tracking."""
    from . import tracking as trk
    from .train import parse_params, train as do_train

    parsed = parse_params(params)
    tracking = trk.resolve(tracking_uri, dagshub_repo)
    result = do_train(project_path, entry_point=entry_point, script=script or None, params=parsed,
                      experiment=experiment, run_name=run_name or None, tracking=tracking,
                      autolog=_flag(autolog, "autolog"), model_name=model_name or None, reuse=_flag(reuse, "reuse"),
                      env_manager=env_manager)
    link = f"[{result.run_id}]({result.run_url})" if result.run_url else f"`{result.run_id}`"
    rows = [[k, f"{v:.4g}"] for k, v in result.metrics.items()]
    how = "reused (same fingerprint, nothing trained)" if result.reused else f"trained in an environment built by `{result.env_manager}`"
    gha.add_summary(f"### 🏋️ train\nMLflow run {link}, model `{result.model_uri}`; {how}\n\nTracking store: {tracking.describe()}\n\n"
                    + (gha.md_table(["metric", "value"], rows) if rows else "_no metrics logged_"))
    return result.outputs()


@main.command("fetch-artifacts")
@click.option("--run-id", required=True, help="MLflow run id (the train step's run-id output).")
@click.option("--path", "dest", default="artifacts", show_default=True, help="Destination directory (replaced atomically).")
@click.option("--artifact-path", default="", help="Only this sub-path of the run's artifacts.")
@click.option("--model-uri", default="", help="Model to download when the run's artifacts hold none (default: the run's logged model).")
@click.option("--include-model", type=_BOOL, default="true", show_default=True)
@tracking_options
@stage
def fetch_artifacts(run_id, dest, artifact_path, model_uri, include_model, tracking_uri, dagshub_repo):
    """Download a run's artifacts and model; write and verify a sha256 manifest."""
    from . import tracking as trk
    from .artifacts import fetch

    tracking = trk.resolve(tracking_uri, dagshub_repo)
    result = fetch(run_id, dest, tracking=tracking, artifact_path=artifact_path, model_uri=model_uri, include_model=_flag(include_model, "include-model"))
    count = sum(1 for _ in open(result.manifest, encoding="utf-8"))
    gha.add_summary(f"### 📦 fetch-artifacts\n{count} files from run `{run_id}` in `{result.path}` (verified against `{result.manifest.name}`); model flavor `{result.flavor or '—'}`, Python {result.python_version or '—'}\n\nTracking store: {tracking.describe()}")
    return result.outputs()


@main.command("verify-manifest")
@click.argument("directory", type=click.Path(file_okay=False))
@stage
def verify_manifest(directory):
    """Check DIRECTORY against its MANIFEST.sha256."""
    from . import manifest

    entries = manifest.verify(Path(directory), "directory")
    print(f"{len(entries)} files match {manifest.NAME}")
    return {}


@main.command("open-pr")
@click.option("--source-dir", required=True, help="Fetched artifacts (with MANIFEST.sha256).")
@click.option("--repo-path", required=True, help="Folder in the repository that receives them.")
@click.option("--workdir", default=".", show_default=True, help="The git checkout.")
@click.option("--remote", default="origin", show_default=True)
@click.option("--branch", default="mlops/model-update", show_default=True, help="The one bot branch for these updates.")
@click.option("--base", default="", help="Base branch (default: the remote's default branch).")
@click.option("--title", default="")
@click.option("--commit-message", default="")
@click.option("--labels", default="", help="Comma- or newline-separated labels.")
@click.option("--reviewers", default="", help="Comma- or newline-separated logins or org/team.")
@click.option("--draft", type=_BOOL, default="false")
@click.option("--repository", default=lambda: os.environ.get("GITHUB_REPOSITORY", ""), help="owner/name (default GITHUB_REPOSITORY).")
@click.option("--api-url", default=lambda: os.environ.get("GITHUB_API_URL", "https://api.github.com"))
@click.option("--server-url", default=lambda: os.environ.get("GITHUB_SERVER_URL", "https://github.com"))
@click.option("--open-pull-request", type=_BOOL, default="true", show_default=True, help="false: push the branch and render the body only.")
@click.option("--template", default="", help="Jinja2 template for the PR body.")
@click.option("--body-file", default="", help="Also write the rendered body here.")
@click.option("--extra-body", default="", help="Markdown files added to the body (e.g. dvc's metrics-diff-file), comma- or newline-separated.")
@stage
def open_pr_cmd(source_dir, repo_path, workdir, remote, branch, base, title, commit_message, labels, reviewers, draft,
                repository, api_url, server_url, open_pull_request, template, body_file, extra_body):
    """Commit artifacts on the bot branch and open or update the pull request. Token: GITHUB_TOKEN env."""
    from .pr import PrRequest, open_pr, split_list

    req = PrRequest(
        source_dir=Path(source_dir), repo_path=repo_path, workdir=Path(workdir), remote=remote, branch=branch, base=base,
        title=title, commit_message=commit_message, labels=split_list(labels), reviewers=split_list(reviewers),
        draft=_flag(draft, "draft"), repository=repository, api_url=api_url, server_url=server_url,
        token=os.environ.get("GITHUB_TOKEN", ""), open_pull_request=_flag(open_pull_request, "open-pull-request"),
        template=Path(template) if template else None, body_file=Path(body_file) if body_file else None,
        extra_body=[Path(p) for p in split_list(extra_body)],
    )
    result = open_pr(req)
    where = f"[#{result.pr_number}]({result.pr_url})" if result.pr_url else f"branch `{result.branch}`"
    gha.add_summary(f"### 🔀 open-pr\n{result.operation}: {where} at `{result.head_sha[:7]}`")
    return result.outputs()


@main.command("render-dockerfile")
@click.option("--model-dir", required=True, help="Folder with MLmodel (fetch-artifacts' model-path).")
@click.option("--output-dir", default="build/image", show_default=True, help="Where the build context is written.")
@click.option("--template", default="", help="Dockerfile Jinja2 template (default: Dockerfile.tmpl).")
@click.option("--base-image", default="", help="Default python:<model's X.Y>-slim.")
@click.option("--ca-bundle", default=lambda: os.environ.get("MLOPS_CA_BUNDLE", ""), help="PEM bundle trusted by pip in the builder stage only.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--version", "version", default="")
@click.option("--run-id", default="")
@click.option("--runtime", default="auto", show_default=True,
              help="auto: ONNX when it converts and passes the equivalence check, else native; native; onnx: ONNX or fail.")
@click.option("--onnx-check-data", default="", help="Held-out sample for the ONNX equivalence check: CSV (table models) or .npy (tensor models).")
@stage
def render_dockerfile(model_dir, output_dir, template, base_image, ca_bundle, port, version, run_id, runtime, onnx_check_data):
    """Render the serving image's Dockerfile and build context for a model."""
    from .dockerfile import render

    result = render(model_dir, output_dir, template=template or None, base_image=base_image, ca_bundle=ca_bundle,
                    port=port, version=version, run_id=run_id, runtime=runtime, check_data=onnx_check_data)
    gha.add_summary(f"### 🐳 render-dockerfile\n`{result.dockerfile}` for a `{result.flavor}` model (sha256 `{result.model_sha256[:12]}…`)\n\n"
                    f"runtime **{result.runtime}**: {result.runtime_reason}")
    return result.outputs()


@main.command("push-image")
@click.option("--context", required=True, help="Build context (render-dockerfile's context output).")
@click.option("--image", required=True, help="registry/name without tag, e.g. ghcr.io/owner/model.")
@click.option("--version", default="", help="Semantic version X.Y.Z → tag vX.Y.Z.")
@click.option("--version-bump", default="", help="patch, minor or major: next version after the highest vX.Y.Z in the registry and git tags (when version is empty).")
@click.option("--tags", default="", help="Extra tags, comma- or newline-separated.")
@click.option("--registry", default="", help="Registry to log in to (default: from image).")
@click.option("--username", default="")
@click.option("--push", type=_BOOL, default="true", show_default=True)
@click.option("--smoke-test", type=_BOOL, default="true", show_default=True)
@click.option("--smoke-payload", default="", help="JSON body for /invocations (default: the model's input example).")
@click.option("--smoke-timeout", default=180.0, show_default=True, type=float)
@click.option("--default-branch", default="", help="Branch that gets 'latest' (default: the repository's).")
@click.option("--network", default="", help="Network for RUN steps of the build (e.g. host).")
@stage
def push_image_cmd(context, image, version, version_bump, tags, registry, username, push, smoke_test, smoke_payload, smoke_timeout, default_branch, network):
    """Build, smoke-test, tag and push the serving image. Password: REGISTRY_PASSWORD env."""
    from .image import PushRequest, push_image
    from .pr import split_list

    req = PushRequest(
        context=Path(context), image=image, version=version, version_bump=version_bump, extra_tags=split_list(tags), registry=registry,
        username=username, password=os.environ.get("REGISTRY_PASSWORD", ""), push=_flag(push, "push"),
        smoke_test=_flag(smoke_test, "smoke-test"), smoke_payload=Path(smoke_payload) if smoke_payload else None,
        smoke_timeout=smoke_timeout, default_branch=default_branch, network=network,
    )
    result = push_image(req)
    rows = [[f"`{t}`"] for t in result.tags]
    gha.add_summary(f"### 🚀 push-image\n{'pushed' if result.digest else 'built (not pushed)'} `{result.image}`\n\n" + gha.md_table(["tag"], rows))
    return result.outputs()


@main.command("validate-data")
@click.option("--data", default="", help="A CSV file, or an image folder DIR/<split>/<class>/*.jpg.")
@click.option("--spec", default="", help="YAML data spec (see actions/validate-data/examples).")
@click.option("--output-dir", default=".mlops/validate-data", show_default=True, help="Where validate-data.json and validate-data.md are written.")
@click.option("--fail-on-invalid", type=_BOOL, default="true", show_default=True, help="false: exit 0 on invalid data (branch on data-valid).")
@stage
def validate_data(data, spec, output_dir, fail_on_invalid):
    """Check a dataset against a declarative spec; write a JSON and a Markdown report."""
    from .errors import StageError
    from .validate import validate

    fail = _flag(fail_on_invalid, "fail-on-invalid")
    with gha.group(f"validate-data {data} against {spec}"):
        result = validate(data, spec, output_dir)
        for check in result.checks:
            gha.log(f"{'ok  ' if check.passed else 'FAIL'} {check.check}{' ' + check.target if check.target else ''}: {check.observed} (expected {check.expected})")
    gha.add_summary(result.markdown)
    if not result.valid and fail:
        gha.set_outputs(result.outputs())  # the report paths stay usable by later if: failure() steps
        count = len(result.failed)
        raise StageError(f"data invalid: {count} check{'s' if count != 1 else ''} failed", f"see the report {result.report_md}")
    return result.outputs()


@main.command()
@click.option("--reference", default="", help="Reference CSV (e.g. the training data).")
@click.option("--current", default="", help="New CSV to compare with the reference.")
@click.option("--columns", default="", help="Column types overriding inference: name=type items (numeric, categorical, text, ignore) or a YAML file.")
@click.option("--p-value", type=float, default=0.05, show_default=True, help="Significance level of the KS, chi-square and permutation tests.")
@click.option("--psi", type=float, default=0.2, show_default=True, help="Population stability index from which a categorical feature drifts.")
@click.option("--js-distance", type=float, default=0.1, show_default=True, help="Jensen-Shannon distance of token frequencies from which a text feature drifts.")
@click.option("--oov-rate", type=float, default=0.1, show_default=True, help="Out-of-vocabulary token rate from which a text feature drifts.")
@click.option("--output-dir", default=".mlops/drift", show_default=True, help="Where drift.json and drift.md are written.")
@stage
def drift(reference, current, columns, p_value, psi, js_distance, oov_rate, output_dir):
    """Compare new data with a reference per feature (KS, chi-square, PSI, text vocabulary); exits 0 either way."""
    from .drift import Thresholds, detect_drift

    if not reference.strip():
        raise InputError("reference", "is empty", "give the reference CSV file, e.g. the training data")
    if not current.strip():
        raise InputError("current", "is empty", "give the CSV file with the new data")
    thresholds = Thresholds(p_value=p_value, psi=psi, js_distance=js_distance, oov_rate=oov_rate)
    result = detect_drift(reference, current, columns=columns, thresholds=thresholds, output_dir=output_dir)
    gha.add_summary(result.markdown)
    if result.drift_detected:
        gha.warning(f"drift detected in {', '.join(result.drifted)} (report: {result.table})")
    return result.outputs()


@main.command("dvc")
@click.option("--operation", required=True, help="add, commit, push, pull, status or metrics-diff.")
@click.option("--paths", default="", help="Data or model paths relative to workdir, comma- or newline-separated (empty: the whole project; add needs paths).")
@click.option("--workdir", default=".", show_default=True, help="The DVC project (a folder with .dvc/, or inside it) in a git checkout.")
@click.option("--remote", default="", help="Remote name from .dvc/config, a local directory or s3://bucket/prefix (empty: the project's default).")
@click.option("--endpoint-url", default="", help="S3-compatible endpoint (MinIO, moto...) for an s3:// remote.")
@click.option("--base", default="", help="Git revision to compare the DVC metrics with (dvc metrics diff BASE).")
@click.option("--metrics-diff-file", default="", help="Where the metrics diff Markdown is written (default .mlops/dvc/metrics-diff.md).")
@click.option("--jobs", type=int, default=0, show_default=True, help="Parallel transfers (0: DVC's default).")
@stage
def dvc_cmd(operation, paths, workdir, remote, endpoint_url, base, metrics_diff_file, jobs):
    """Version data and models with DVC: add/commit/push/pull/status, metrics diff against a base. Credentials: AWS_* env."""
    from .dvc import DvcRequest, run
    from .pr import split_list

    req = DvcRequest(operation=operation.strip(), paths=split_list(paths), workdir=Path(workdir), remote=remote, endpoint_url=endpoint_url,
                     base=base, metrics_diff_file=Path(metrics_diff_file) if metrics_diff_file else None, jobs=jobs or None)
    result = run(req)
    rows = [[f"`{path}`", f"`{digest}`"] for path, digest in sorted(result.hashes.items())]
    gha.add_summary(f"### 🗃️ dvc {result.operation}\n{result.detail or 'done'}; changed: **{'true' if result.changed else 'false'}**\n\n"
                    + (gha.md_table(["path", "md5"], rows) if rows else "") + (f"\n{result.metrics_diff}" if result.metrics_diff else ""))
    return result.outputs()


@main.command()
@click.option("--needs", "needs_json", default=lambda: os.environ.get("MLOPS_NEEDS", ""), help="toJSON(needs) of the summary job (default: MLOPS_NEEDS env).")
@click.option("--stages", default="", help="job=label lines: the order and names of the stages in the table.")
@click.option("--reasons", default="", help="job=text lines: why a stage was skipped or failed.")
@click.option("--after", default="", help="job=upstream-job lines: a skipped stage takes its reason from that job.")
@click.option("--title", default="mlops pipeline", show_default=True)
@click.option("--output", default=".mlops/summary.json", show_default=True, help="Where the JSON summary is written.")
@stage
def summary(needs_json, stages, reasons, after, title, output):
    """One job-summary table for a pipeline run (stages, metrics, links) and the same data as JSON."""
    from .summary import summarize

    result = summarize(needs_json, stages=stages, reasons=reasons, after=after, title=title, output=output)
    gha.add_summary(result.markdown)
    gha.log(result.markdown)
    return result.outputs()


@main.command()
@click.option("--run-id", required=True, help="MLflow run id of the candidate (the train step's run-id output).")
@click.option("--model-name", required=True, help="Registered model name in the MLflow Model Registry.")
@click.option("--metric", required=True, help="Metric compared between the run and the champion.")
@click.option("--direction", default="maximize", show_default=True, help="maximize or minimize.")
@click.option("--min-improvement", default="0", show_default=True, help="Absolute margin the run must beat the champion by.")
@click.option("--champion-alias", default="champion", show_default=True)
@click.option("--challenger-alias", default="challenger", show_default=True, help="Alias for a version that does not win; empty: none.")
@click.option("--model-uri", default="", help="Model to register (default: the run's logged model).")
@tracking_options
@stage
def gate(run_id, model_name, metric, direction, min_improvement, champion_alias, challenger_alias, model_uri, tracking_uri, dagshub_repo):
    """Champion/challenger: register the run's model, compare its metric with the champion's, move the alias if it wins."""
    from . import tracking as trk
    from .gate import GateRequest, gate as do_gate, summary

    req = GateRequest(run_id=run_id, model_name=model_name.strip(), metric=metric.strip(), direction=direction.strip().lower(),
                      min_improvement=min_improvement, champion_alias=champion_alias.strip(), challenger_alias=challenger_alias.strip(),
                      model_uri=model_uri)
    from .gate import check_request

    check_request(req)
    tracking = trk.resolve(tracking_uri, dagshub_repo)
    with gha.group(f"gate {model_name} on {metric} ({direction})"):
        result = do_gate(req, tracking)
        print(("promoted: " if result.promoted else "not promoted: ") + result.reason)
    gha.add_summary(summary(result))
    return result.outputs()


@main.command("promote-image")
@click.option("--source", required=True, help="Image to promote, by digest: registry/name@sha256:...")
@click.option("--target", required=True, help="Target repository without tag, e.g. prod.example.com/owner/model.")
@click.option("--version", "version", default="", help="Semantic version X.Y.Z → tag vX.Y.Z.")
@click.option("--latest", type=_BOOL, default="true", show_default=True, help="Also tag latest.")
@click.option("--tags", default="", help="Extra tags, comma- or newline-separated.")
@click.option("--source-username", default="")
@click.option("--target-username", default="")
@stage
def promote_image_cmd(source, target, version, latest, tags, source_username, target_username):
    """Copy an image by digest to another repository/registry without rebuilding; tag vX.Y.Z and latest.
    Passwords: SOURCE_REGISTRY_PASSWORD, TARGET_REGISTRY_PASSWORD env."""
    from .pr import split_list
    from .promote import PromoteRequest, promote

    req = PromoteRequest(source=source, target=target, version=version, latest=_flag(latest, "latest"), extra_tags=split_list(tags),
                         source_username=source_username, source_password=os.environ.get("SOURCE_REGISTRY_PASSWORD", ""),
                         target_username=target_username, target_password=os.environ.get("TARGET_REGISTRY_PASSWORD", ""))
    result = promote(req)
    rows = [[f"`{t}`", f"`{result.digest}`"] for t in result.tags]
    gha.add_summary(f"### 🏷️ promote-image\n`{source}` → `{result.image}` ({result.copied} blobs copied, {result.mounted} mounted, {result.present} present)\n\n"
                    + gha.md_table(["tag", "digest"], rows))
    return result.outputs()


@main.command("health-check")
@click.option("--image", required=True, help="Published image, by digest (name@sha256:...) or tag.")
@click.option("--registry", default="", help="Registry to log in to (default: from image).")
@click.option("--username", default="")
@click.option("--payload", default="", help="JSON body for /invocations (default: the input example baked in the image).")
@click.option("--timeout", default="180", show_default=True, help="Seconds to wait for /health.")
@click.option("--port", default="8080", show_default=True, help="Port the server listens on in the container.")
@click.option("--pull", type=_BOOL, default="true", show_default=True, help="Pull the image first.")
@stage
def health_check_cmd(image, registry, username, payload, timeout, port, pull):
    """Pull the published image, run it, wait for /health, send one prediction, remove the container.
    Password: REGISTRY_PASSWORD env."""
    from .health import HealthRequest, health_check

    req = HealthRequest(image=image, registry=registry, username=username, password=os.environ.get("REGISTRY_PASSWORD", ""),
                        payload=payload, timeout=timeout, port=port, pull=_flag(pull, "pull"))
    result = health_check(req)
    gha.add_summary(f"### 🩺 health-check\n`{result.image}`: /health after {result.ready_seconds:.1f}s, prediction in {result.latency_ms} ms\n\n"
                    + gha.md_table(["prediction"], [[f"`{result.prediction}`"]]))
    return result.outputs()


@main.command()
@click.option("--project-path", default=".", show_default=True)
@click.option("--entry-point", default="main", show_default=True)
@click.option("--params", default="")
@click.option("--experiment", default="mlops-actions", show_default=True)
@click.option("--reuse", type=_BOOL, default="true", show_default=True, help="Reuse a finished run with the same fingerprint instead of training again.")
@click.option("--gate", "gate_on", type=_BOOL, default="true", show_default=True, help="Champion/challenger gate in the MLflow Model Registry; 'false': propose every run.")
@click.option("--metric", default="", help="The metric the gate compares (required while the gate is on).")
@click.option("--direction", default="max", show_default=True, help="max or min: which way the metric is better.")
@click.option("--min-improvement", default="0", show_default=True, help="Absolute margin the run must beat the champion by.")
@click.option("--model-name", default="", help="Registered model name; empty: the project folder's name.")
@click.option("--artifacts-path", default="artifacts", show_default=True)
@click.option("--repo-path", default="", help="Folder in the repo for the PR; empty: no PR.")
@click.option("--branch", default="mlops/model-update", show_default=True)
@click.option("--base", default="")
@click.option("--labels", default="")
@click.option("--open-pull-request", type=_BOOL, default="true", show_default=True)
@click.option("--repository", default=lambda: os.environ.get("GITHUB_REPOSITORY", ""))
@click.option("--api-url", default=lambda: os.environ.get("GITHUB_API_URL", "https://api.github.com"))
@click.option("--server-url", default=lambda: os.environ.get("GITHUB_SERVER_URL", "https://github.com"))
@click.option("--context-dir", default="build/image", show_default=True)
@click.option("--base-image", default="")
@click.option("--ca-bundle", default=lambda: os.environ.get("MLOPS_CA_BUNDLE", ""))
@click.option("--image", default="", help="registry/name to push (lowercased); empty: stop after render-dockerfile.")
@click.option("--registry", default="")
@click.option("--username", default="")
@click.option("--version", "version", default="")
@click.option("--push", type=_BOOL, default="true", show_default=True)
@env_manager_option
@tracking_options
@stage
def pipeline(project_path, entry_point, params, experiment, reuse, gate_on, metric, direction, min_improvement, model_name,
             artifacts_path, repo_path, branch, base, labels, open_pull_request, repository, api_url, server_url, context_dir,
             base_image, ca_bundle, image, registry, username, version, push, env_manager, tracking_uri, dagshub_repo):
    """train (reuse) → gate → fetch → render → build + smoke test → open-pr → push, in one step (the
    root action). A losing challenger stops cleanly (decision: rejected). Secrets: GITHUB_TOKEN, REGISTRY_PASSWORD env."""
    from . import tracking as trk
    from .image import PushRequest
    from .pipeline import GateConfig, PipelineConfig, default_model_name, run_pipeline
    from .pr import PrRequest, split_list
    from .train import parse_params

    gate_cfg = None
    if _flag(gate_on, "gate"):
        gate_cfg = GateConfig(metric=metric, model_name=model_name.strip() or default_model_name(project_path), direction=direction,
                              min_improvement=min_improvement)
    pr = None
    if repo_path:
        pr = PrRequest(source_dir=Path(artifacts_path), repo_path=repo_path, branch=branch, base=base, labels=split_list(labels),
                       repository=repository, api_url=api_url, server_url=server_url, token=os.environ.get("GITHUB_TOKEN", ""),
                       open_pull_request=_flag(open_pull_request, "open-pull-request"))
    push_req = None
    if image:
        push_req = PushRequest(context=Path(context_dir), image=image, version=version, registry=registry, username=username,
                               password=os.environ.get("REGISTRY_PASSWORD", ""), push=_flag(push, "push"))
    cfg = PipelineConfig(project_path=project_path, tracking=trk.resolve(tracking_uri, dagshub_repo), entry_point=entry_point,
                         params=parse_params(params), experiment=experiment, artifacts_dir=Path(artifacts_path), pr=pr,
                         context_dir=Path(context_dir), base_image=base_image, ca_bundle=ca_bundle, version=version, push=push_req,
                         env_manager=env_manager, reuse=_flag(reuse, "reuse"), gate=gate_cfg)
    outputs = run_pipeline(cfg)
    outputs.pop("stages", None)
    return outputs


@main.command()
@click.option("--workspace", default=".mlops/demo", show_default=True, help="Where the demo writes everything.")
@click.option("--registry", default="127.0.0.1:5000", show_default=True)
@click.option("--skip-image", is_flag=True, help="Stop after render-dockerfile.")
@stage
def demo(workspace, registry, skip_image):
    """All five stages on the embedded defaults: sentiment model, local MLflow, local git, local registry."""
    from .demo import run_demo

    return run_demo(Path(workspace), registry=registry, skip_image=skip_image)


if __name__ == "__main__":
    main()
