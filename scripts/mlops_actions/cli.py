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

from . import __version__
from .core import gha
from .core.errors import InputError, MlopsError
from .stages import summary as summary_stage  # light: its defaults are the flags' defaults

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
            gha.error(
                f"unexpected {exc.__class__.__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''} (re-run "
                "with MLOPS_DEBUG=1 for the trace)"
            )
            sys.exit(1)
        if outputs:
            gha.set_outputs(outputs)

    return wrapper


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="mlops")
def main() -> None:
    """mlops-actions: train, fetch, propose, package and ship ML models from CI."""


def text_option(name: str, help: str):
    """A text flag whose default is empty (most flags: an action input passed through as is)."""
    return click.option(name, default="", help=help)


def flag_option(*decls: str, default: str, help: str = ""):
    """A true/false flag as an action passes it (a string, checked by _flag with a one-line error)."""
    return click.option(*decls, type=_BOOL, default=default, show_default=True, help=help or None)


def tracking_options(fn):
    fn = click.option(
        "--dagshub-repo", default="", help="owner/name of a DagsHub repository; derives the tracking URI."
    )(fn)
    fn = click.option("--tracking-uri", default="", help="MLflow tracking URI; empty → sqlite store in the workspace.")(
        fn
    )
    return fn


def env_manager_option(fn):
    return click.option(
        "--env-manager",
        default="uv",
        show_default=True,
        help="How the project's environment is built: uv, virtualenv (MLflow's env managers) or local.",
    )(fn)


@main.command()
@click.option("--project-path", default=".", show_default=True, help="Folder of the model project.")
@click.option("--entry-point", default="main", show_default=True, help="MLproject entry point.")
@text_option("--script", "A plain Python script to run instead of an MLproject entry point.")
@text_option("--params", "key=value lines passed as parameters.")
@text_option("--tags", "key=value lines set as tags on the run (the reused run too).")
@click.option("--experiment", default="mlops-actions", show_default=True)
@click.option("--run-name", default="")
@text_option("--model-name", "Name of the logged model to report when the run logs several.")
@flag_option("--autolog", default="true", help="mlflow.autolog() for plain scripts.")
@flag_option(
    "--reuse", default="false", help="Return a finished run with the same fingerprint instead of training again."
)
@env_manager_option
@tracking_options
@stage
def train(
    project_path,
    entry_point,
    script,
    params,
    tags,
    experiment,
    run_name,
    model_name,
    autolog,
    reuse,
    env_manager,
    tracking_uri,
    dagshub_repo,
):
    """Run a model project under MLflow tracking."""
    from .core import tracking as trk
    from .core.inputs import parse_params
    from .stages.train import train as do_train

    parsed = parse_params(params)
    extra_tags = parse_params(tags, "tags")
    tracking = trk.resolve(tracking_uri, dagshub_repo)
    result = do_train(
        project_path,
        entry_point=entry_point,
        script=script or None,
        params=parsed,
        experiment=experiment,
        run_name=run_name or None,
        tracking=tracking,
        autolog=_flag(autolog, "autolog"),
        model_name=model_name or None,
        reuse=_flag(reuse, "reuse"),
        env_manager=env_manager,
        extra_tags=extra_tags,
    )
    gha.add_summary(result.summary(tracking))
    return result.outputs()


@main.command("fetch-artifacts")
@click.option("--run-id", required=True, help="MLflow run id (the train step's run-id output).")
@click.option(
    "--path", "dest", default="artifacts", show_default=True, help="Destination directory (replaced atomically)."
)
@text_option("--artifact-path", "Only this sub-path of the run's artifacts.")
@text_option("--model-uri", "Model to download when the run's artifacts hold none (default: the run's logged model).")
@flag_option("--include-model", default="true")
@text_option("--trend-metric", "Plot this metric over the experiment's last runs (metric_trend.png); empty: none.")
@click.option("--trend-runs", default=20, show_default=True, type=int, help="How many runs the trend plot shows.")
@tracking_options
@stage
def fetch_artifacts(
    run_id, dest, artifact_path, model_uri, include_model, trend_metric, trend_runs, tracking_uri, dagshub_repo
):
    """Download a run's artifacts and model; write and verify a sha256 manifest."""
    from .core import tracking as trk
    from .stages.fetch_artifacts import fetch

    tracking = trk.resolve(tracking_uri, dagshub_repo)
    result = fetch(
        run_id,
        dest,
        tracking=tracking,
        artifact_path=artifact_path,
        model_uri=model_uri,
        include_model=_flag(include_model, "include-model"),
        trend_metric=trend_metric,
        trend_runs=trend_runs,
    )
    gha.add_summary(result.summary(run_id, tracking))
    return result.outputs()


@main.command()
@click.option("--path", required=True, help="Folder (or file) to scan: fetch-artifacts' path or model-path output.")
@click.option(
    "--fail-on",
    default="low",
    show_default=True,
    help="Lowest severity that stops the pipeline: low (any finding), medium, high, critical, or none (report only).",
)
@text_option("--report-dir", "Folder for the JSON and Markdown reports (default: $RUNNER_TEMP); never inside --path.")
@stage
def scan(path, fail_on, report_dir):
    """Scan every model file for code run at load time (pickle globals, Keras Lambda, TF file ops)."""
    from .core.errors import StageError
    from .stages.scan import fail_line
    from .stages.scan import scan as do_scan

    result = do_scan(Path(path), fail_on, Path(report_dir) if report_dir else None)
    gha.add_summary(result.summary())
    if not result.passed:
        gha.set_outputs(result.outputs())  # the report paths, for a later step that shows them
        raise StageError(
            fail_line(result),
            "retrain without the flagged object, or set fail-on above its severity if you trust it (see the report)",
        )
    return result.outputs()


@main.command("verify-manifest")
@click.argument("directory", type=click.Path(file_okay=False))
@stage
def verify_manifest(directory):
    """Check DIRECTORY against its MANIFEST.sha256."""
    from .core import manifest

    entries = manifest.verify(Path(directory), "directory")
    print(f"{len(entries)} files match {manifest.NAME}")
    return {}


@main.command("open-pr")
@click.option("--source-dir", required=True, help="Fetched artifacts (with MANIFEST.sha256).")
@click.option("--repo-path", required=True, help="Folder in the repository that receives them.")
@click.option("--workdir", default=".", show_default=True, help="The git checkout.")
@click.option("--remote", default="origin", show_default=True)
@click.option("--branch", default="mlops/model-update", show_default=True, help="The one bot branch for these updates.")
@text_option("--base", "Base branch (default: the remote's default branch).")
@click.option("--title", default="")
@click.option("--commit-message", default="")
@text_option("--labels", "Comma- or newline-separated labels.")
@text_option("--reviewers", "Comma- or newline-separated logins or org/team.")
@click.option("--draft", type=_BOOL, default="false")
@click.option(
    "--repository",
    default=lambda: os.environ.get("GITHUB_REPOSITORY", ""),
    help="owner/name (default GITHUB_REPOSITORY).",
)
@click.option("--api-url", default=lambda: os.environ.get("GITHUB_API_URL", "https://api.github.com"))
@click.option("--server-url", default=lambda: os.environ.get("GITHUB_SERVER_URL", "https://github.com"))
@flag_option("--open-pull-request", default="true", help="false: push the branch and render the body only.")
@text_option("--template", "Jinja2 template for the PR body.")
@text_option("--body-file", "Also write the rendered body here.")
@text_option(
    "--extra-body", "Markdown files added to the body (e.g. dvc's metrics-diff-file), comma- or newline-separated."
)
@text_option("--assignees", "Comma- or newline-separated logins to assign.")
@text_option("--author", "Commit author 'Display Name <email>' (default: the committer).")
@text_option("--committer", "Commit committer 'Display Name <email>' (default: github-actions[bot]).")
@flag_option("--delete-branch", default="false", help="No diff left: delete the bot branch too (the PR is closed).")
@text_option("--verdict", 'JSON {"gate": {...}, "data": {...}, "scan": {...}, "image": {...}}: the verdict block.')
@text_option("--metrics", "Metrics first in the table: names or globs, comma- or newline-separated.")
@stage
def open_pr_cmd(
    source_dir,
    repo_path,
    labels,
    open_pull_request,
    workdir,
    reviewers,
    metrics,
    draft,
    template,
    body_file,
    extra_body,
    assignees,
    delete_branch,
    **text,
):
    """Commit artifacts on the bot branch and open or update the pull request. Token: GITHUB_TOKEN env."""
    from .core.inputs import split_list
    from .stages.open_pr import open_pr

    req = pr_request(
        source_dir,
        repo_path,
        labels,
        open_pull_request,
        workdir=Path(workdir),
        reviewers=split_list(reviewers),
        draft=_flag(draft, "draft"),
        template=Path(template) if template else None,
        body_file=Path(body_file) if body_file else None,
        extra_body=[Path(p) for p in split_list(extra_body)],
        assignees=split_list(assignees),
        delete_branch=_flag(delete_branch, "delete-branch"),
        metrics=split_list(metrics),
        **text,
    )
    result = open_pr(req)
    gha.add_summary(result.summary())
    return result.outputs()


def pr_request(source_dir: str, repo_path: str, labels: str, open_pull_request: str, **fields):
    """open-pr's request from its flags (the pipeline's too): ``fields`` are PrRequest's own, the
    token comes from GITHUB_TOKEN."""
    from .core.inputs import split_list
    from .stages.open_pr import PrRequest

    return PrRequest(
        source_dir=Path(source_dir),
        repo_path=repo_path,
        labels=split_list(labels),
        token=os.environ.get("GITHUB_TOKEN", ""),
        open_pull_request=_flag(open_pull_request, "open-pull-request"),
        **fields,
    )


@main.command("render-dockerfile")
@click.option("--model-dir", required=True, help="Folder with MLmodel (fetch-artifacts' model-path).")
@click.option("--output-dir", default="build/image", show_default=True, help="Where the build context is written.")
@text_option("--template", "Dockerfile Jinja2 template (default: Dockerfile.tmpl).")
@text_option("--base-image", "Default python:<model's X.Y>-slim.")
@click.option(
    "--ca-bundle",
    default=lambda: os.environ.get("MLOPS_CA_BUNDLE", ""),
    help="PEM bundle trusted by pip in the builder stage only.",
)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--version", "version", default="")
@click.option("--run-id", default="")
@click.option(
    "--runtime",
    default="auto",
    show_default=True,
    help="auto: by flavor, with the reason (sklearn/keras: ONNX when it passes the equivalence check, else native; "
    "xgboost, lightgbm, onnx: native; any other python_function model: pyfunc); native: the flavor's own library "
    "(sklearn, tensorflow, keras, xgboost, lightgbm, onnx); onnx: convert to ONNX or fail; "
    "pyfunc: mlflow.pyfunc with mlflow-skinny.",
)
@text_option(
    "--onnx-check-data", "Held-out sample for the ONNX equivalence check: CSV (table models) or .npy (tensor models)."
)
@text_option(
    "--challenger-dir",
    "A second model folder baked in beside the champion, for SHADOW_RATIO / CANARY_RATIO traffic at run time.",
)
@text_option(
    "--reference-data",
    "Sample of the training data (CSV; .npy for tensor models) profiled for drift at serve time (/monitoring/drift).",
)
@stage
def render_dockerfile(model_dir, output_dir, template, onnx_check_data, **options):
    """Render the serving image's Dockerfile and build context for a model."""
    from .stages.render_dockerfile import render

    # options: base_image, ca_bundle, port, version, run_id, runtime, challenger_dir, reference_data (render's)
    result = render(model_dir, output_dir, template=template or None, check_data=onnx_check_data, **options)
    gha.add_summary(result.summary())
    return result.outputs()


@main.command("push-image")
@click.option("--context", required=True, help="Build context (render-dockerfile's context output).")
@click.option("--image", required=True, help="registry/name without tag, e.g. ghcr.io/owner/model.")
@text_option("--version", "Semantic version X.Y.Z → tag vX.Y.Z.")
@click.option(
    "--version-bump",
    default="",
    help=(
        "patch, minor or major: next version after the highest vX.Y.Z in the registry and git tags "
        "(when version is empty)."
    ),
)
@text_option("--tags", "Extra tags, comma- or newline-separated.")
@text_option("--registry", "Registry to log in to (default: from image).")
@click.option("--username", default="")
@flag_option("--push", default="true")
@flag_option("--smoke-test", default="true")
@text_option("--smoke-payload", "JSON body for /invocations (default: the model's input example).")
@click.option("--smoke-timeout", default=180.0, show_default=True, type=float)
@text_option("--default-branch", "Branch that gets 'latest' (default: the repository's).")
@text_option("--network", "Network for RUN steps of the build (e.g. host).")
@text_option("--cache-from", "Registry build cache to read, one per line: type=registry,ref=NAME:TAG.")
@text_option("--cache-to", "Registry build cache to store, one per line: type=registry,ref=NAME:TAG[,mode=max].")
@stage
def push_image_cmd(context, push, tags, smoke_test, smoke_payload, cache_from, cache_to, **text):
    """Build, smoke-test, tag and push the serving image. Password: REGISTRY_PASSWORD env."""
    from .core.inputs import split_list
    from .stages.push_image import push_image

    req = push_request(
        context,
        push,
        extra_tags=split_list(tags),
        smoke_test=_flag(smoke_test, "smoke-test"),
        smoke_payload=Path(smoke_payload) if smoke_payload else None,
        cache_from=[line for line in cache_from.splitlines() if line.strip()],  # entries hold commas
        cache_to=[line for line in cache_to.splitlines() if line.strip()],
        **text,
    )
    result = push_image(req)
    gha.add_summary(result.summary())
    return result.outputs()


def push_request(context: str, push: str, **fields):
    """push-image's request from its flags (the pipeline's too): ``fields`` are PushRequest's own,
    the password comes from REGISTRY_PASSWORD."""
    from .stages.push_image import PushRequest

    password = os.environ.get("REGISTRY_PASSWORD", "")
    return PushRequest(context=Path(context), password=password, push=_flag(push, "push"), **fields)


@main.command("validate-data")
@text_option("--data", "A CSV file, or an image folder DIR/<split>/<class>/*.jpg.")
@text_option("--spec", "YAML data spec (see actions/validate-data/examples).")
@click.option(
    "--output-dir",
    default=".mlops/validate-data",
    show_default=True,
    help="Where validate-data.json and validate-data.md are written.",
)
@flag_option("--fail-on-invalid", default="true", help="false: exit 0 on invalid data (branch on data-valid).")
@stage
def validate_data(data, spec, output_dir, fail_on_invalid):
    """Check a dataset against a declarative spec; write a JSON and a Markdown report."""
    from .core.errors import StageError
    from .stages.validate_data import validate

    fail = _flag(fail_on_invalid, "fail-on-invalid")
    with gha.group(f"validate-data {data} against {spec}"):
        result = validate(data, spec, output_dir)
        for check in result.checks:
            gha.log(
                f"{'ok  ' if check.passed else 'FAIL'} {check.check}{' ' + check.target if check.target else ''}: "
                f"{check.observed} (expected {check.expected})"
            )
    gha.add_summary(result.markdown)
    if not result.valid and fail:
        gha.set_outputs(result.outputs())  # the report paths stay usable by later if: failure() steps
        count = len(result.failed)
        raise StageError(
            f"data invalid: {count} check{'s' if count != 1 else ''} failed: {result.failures()}",
            f"see the report {result.report_md}",
        )
    return result.outputs()


@main.command()
@text_option("--reference", "Reference CSV (e.g. the training data).")
@text_option("--current", "New CSV to compare with the reference.")
@text_option(
    "--service-url",
    "Instead of two CSVs: a running serving image rendered with reference-data; its /monitoring/drift decides.",
)
@click.option(
    "--min-rows",
    type=int,
    default=500,
    show_default=True,
    help="With --service-url: rows the traffic window must hold before drift is decided.",
)
@text_option(
    "--columns",
    "Column types overriding inference: name=type items (numeric, categorical, text, ignore) or a YAML file.",
)
@click.option(
    "--p-value",
    type=float,
    default=0.05,
    show_default=True,
    help="Significance level of the KS, chi-square and permutation tests.",
)
@click.option(
    "--psi",
    type=float,
    default=0.2,
    show_default=True,
    help="Population stability index from which a categorical feature drifts.",
)
@click.option(
    "--js-distance",
    type=float,
    default=0.1,
    show_default=True,
    help="Jensen-Shannon distance of token frequencies from which a text feature drifts.",
)
@click.option(
    "--oov-rate",
    type=float,
    default=0.1,
    show_default=True,
    help="Out-of-vocabulary token rate from which a text feature drifts.",
)
@click.option(
    "--output-dir", default=".mlops/drift", show_default=True, help="Where drift.json and drift.md are written."
)
@stage
def drift(reference, current, service_url, min_rows, columns, p_value, psi, js_distance, oov_rate, output_dir):
    """Compare new data with a reference per feature (KS, chi-square, PSI, text vocabulary), or read a
    serving image's drift over its traffic (--service-url); exits 0 either way."""
    from .stages.drift import Thresholds, detect_drift, service_drift

    if service_url.strip():
        if reference.strip() or current.strip():
            raise InputError(
                "service-url", "is given with reference/current", "give either service-url, or reference and current"
            )
        result = service_drift(service_url, psi=psi, min_rows=min_rows, output_dir=output_dir)
    elif not reference.strip():
        raise InputError("reference", "is empty", "give the reference CSV file, e.g. the training data")
    elif not current.strip():
        raise InputError("current", "is empty", "give the CSV file with the new data")
    else:
        thresholds = Thresholds(p_value=p_value, psi=psi, js_distance=js_distance, oov_rate=oov_rate)
        result = detect_drift(reference, current, columns=columns, thresholds=thresholds, output_dir=output_dir)
    gha.add_summary(result.markdown)
    if result.drift_detected:
        gha.warning(f"drift detected in {', '.join(result.drifted)} (report: {result.table})")
    return result.outputs()


@main.command("dvc")
@click.option("--operation", required=True, help="add, commit, push, pull, status or metrics-diff.")
@click.option(
    "--paths",
    default="",
    help=(
        "Data or model paths relative to workdir, comma- or newline-separated "
        "(empty: the whole project; add needs paths)."
    ),
)
@click.option(
    "--workdir",
    default=".",
    show_default=True,
    help="The DVC project (a folder with .dvc/, or inside it) in a git checkout.",
)
@text_option(
    "--remote", "Remote name from .dvc/config, a local directory or s3://bucket/prefix (empty: the project's default)."
)
@text_option("--endpoint-url", "S3-compatible endpoint (MinIO, moto...) for an s3:// remote.")
@text_option("--base", "Git revision to compare the DVC metrics with (dvc metrics diff BASE).")
@text_option("--metrics-diff-file", "Where the metrics diff Markdown is written (default .mlops/dvc/metrics-diff.md).")
@click.option("--jobs", type=int, default=0, show_default=True, help="Parallel transfers (0: DVC's default).")
@stage
def dvc_cmd(operation, paths, workdir, remote, endpoint_url, base, metrics_diff_file, jobs):
    """Version data and models with DVC: add/commit/push/pull/status, metrics diff against a base.
    Credentials: AWS_* env."""
    from .core.inputs import split_list
    from .stages.dvc import DvcRequest, run

    req = DvcRequest(
        operation=operation.strip(),
        paths=split_list(paths),
        workdir=Path(workdir),
        remote=remote,
        endpoint_url=endpoint_url,
        base=base,
        metrics_diff_file=Path(metrics_diff_file) if metrics_diff_file else None,
        jobs=jobs or None,
    )
    result = run(req)
    gha.add_summary(result.summary())
    return result.outputs()


@main.command()
@click.option(
    "--needs",
    "needs_json",
    default=lambda: os.environ.get("MLOPS_NEEDS", ""),
    help="toJSON(needs) of the summary job (default: MLOPS_NEEDS env).",
)
@text_option("--stages", "job=label lines: the order and names of the stages in the table.")
@text_option("--reasons", "job=text lines: why a stage was skipped or failed.")
@text_option("--after", "job=upstream-job lines: a skipped stage takes its reason from that job.")
@click.option("--title", default=summary_stage.DEFAULT_TITLE, show_default=True)
@click.option(
    "--output", default=summary_stage.DEFAULT_OUTPUT, show_default=True, help="Where the JSON summary is written."
)
@stage
def summary(needs_json, stages, reasons, after, title, output):
    """One job-summary table for a pipeline run (stages, metrics, links) and the same data as JSON."""
    from .stages.summary import summarize

    result = summarize(needs_json, stages=stages, reasons=reasons, after=after, title=title, output=output)
    gha.add_summary(result.markdown)
    gha.log(result.markdown)
    return result.outputs()


@main.command("sweep")
@click.option("--operation", required=True, help="plan (expand the sweep into matrix points) or select (the best run).")
@text_option("--sweep", "plan: the sweep as YAML, a grid {C: [0.1, 1]} or a list of points [{C: 0.1}, {C: 1}].")
@text_option("--sweep-file", "plan: a YAML file of the workspace holding the sweep, instead of --sweep.")
@text_option("--params", "plan: base key=value parameters every point starts from.")
@text_option("--sweep-id", "select: the plan's sweep-id output.")
@text_option("--points", "select: the plan's points output (JSON).")
@text_option("--metric", "select: the metric that decides the best point.")
@click.option("--direction", default="maximize", show_default=True, help="select: maximize or minimize.")
@click.option("--experiment", default="mlops-actions", show_default=True, help="select: the points' experiment.")
@tracking_options
@stage
def sweep_cmd(
    operation, sweep, sweep_file, params, sweep_id, points, metric, direction, experiment, tracking_uri, dagshub_repo
):
    """Hyper-parameter sweeps across runners: plan the matrix of points, then select the best run."""
    from .core.inputs import parse_params
    from .stages import sweep as sw

    operation = operation.strip().lower()
    if operation == "plan":
        doc = sw.read_sweep(sweep, sweep_file, os.environ.get("GITHUB_WORKSPACE") or ".")
        result = sw.plan(doc, parse_params(params), sha=sw.head_sha())
        gha.add_summary(result.summary())
        gha.log(f"sweep {result.sweep_id}: {len(result.points)} points of {', '.join(result.swept)}")
        return result.outputs()
    if operation == "select":
        from .core import tracking as trk

        tracking = trk.resolve(tracking_uri, dagshub_repo)
        selection = sw.select(
            sweep_id=sweep_id.strip(),
            points=sw.parse_points(points),
            metric=metric.strip(),
            direction=direction.strip().lower(),
            experiment=experiment,
            tracking=tracking,
        )
        gha.add_summary(selection.markdown())
        gha.log(selection.markdown())
        return selection.outputs()
    raise InputError("operation", f"'{operation}' is not plan or select", "write plan or select")


@main.command()
@click.option("--run-id", required=True, help="MLflow run id of the candidate (the train step's run-id output).")
@click.option("--model-name", required=True, help="Registered model name in the MLflow Model Registry.")
@click.option("--metric", required=True, help="Metric compared between the run and the champion.")
@click.option("--direction", default="maximize", show_default=True, help="maximize or minimize.")
@click.option(
    "--min-improvement", default="0", show_default=True, help="Absolute margin the run must beat the champion by."
)
@click.option("--champion-alias", default="champion", show_default=True)
@click.option(
    "--challenger-alias",
    default="challenger",
    show_default=True,
    help="Alias for a version that does not win; empty: none.",
)
@text_option("--model-uri", "Model to register (default: the run's logged model).")
@tracking_options
@stage
def gate(
    run_id,
    model_name,
    metric,
    direction,
    min_improvement,
    champion_alias,
    challenger_alias,
    model_uri,
    tracking_uri,
    dagshub_repo,
):
    """Champion/challenger: register the run's model, compare its metric with the champion's, move the
    alias if it wins."""
    from .core import tracking as trk
    from .stages.gate import GateRequest, check_request
    from .stages.gate import gate as do_gate

    req = GateRequest(
        run_id=run_id,
        model_name=model_name.strip(),
        metric=metric.strip(),
        direction=direction.strip().lower(),
        min_improvement=min_improvement,
        champion_alias=champion_alias.strip(),
        challenger_alias=challenger_alias.strip(),
        model_uri=model_uri,
    )
    check_request(req)
    tracking = trk.resolve(tracking_uri, dagshub_repo)
    with gha.group(f"gate {model_name} on {metric} ({direction})"):
        result = do_gate(req, tracking)
        print(("promoted: " if result.promoted else "not promoted: ") + result.reason)
    gha.add_summary(result.summary())
    return result.outputs()


@main.command("promote-image")
@click.option("--source", required=True, help="Image to promote, by digest: registry/name@sha256:...")
@click.option("--target", required=True, help="Target repository without tag, e.g. prod.example.com/owner/model.")
@click.option("--version", "version", default="", help="Semantic version X.Y.Z → tag vX.Y.Z.")
@flag_option("--latest", default="true", help="Also tag latest.")
@text_option("--tags", "Extra tags, comma- or newline-separated.")
@click.option("--source-username", default="")
@click.option("--target-username", default="")
@stage
def promote_image_cmd(source, target, version, latest, tags, source_username, target_username):
    """Copy an image by digest to another repository/registry without rebuilding; tag vX.Y.Z and latest.
    Passwords: SOURCE_REGISTRY_PASSWORD, TARGET_REGISTRY_PASSWORD env."""
    from .core.inputs import split_list
    from .stages.promote_image import PromoteRequest, promote

    req = PromoteRequest(
        source=source,
        target=target,
        version=version,
        latest=_flag(latest, "latest"),
        extra_tags=split_list(tags),
        source_username=source_username,
        source_password=os.environ.get("SOURCE_REGISTRY_PASSWORD", ""),
        target_username=target_username,
        target_password=os.environ.get("TARGET_REGISTRY_PASSWORD", ""),
    )
    result = promote(req)
    gha.add_summary(result.summary(source))
    return result.outputs()


@main.command("health-check")
@click.option("--image", required=True, help="Published image, by digest (name@sha256:...) or tag.")
@text_option("--registry", "Registry to log in to (default: from image).")
@click.option("--username", default="")
@text_option("--payload", "JSON body for /invocations (default: the input example baked in the image).")
@click.option("--timeout", default="180", show_default=True, help="Seconds to wait for /health.")
@click.option("--port", default="8080", show_default=True, help="Port the server listens on in the container.")
@flag_option("--pull", default="true", help="Pull the image first.")
@stage
def health_check_cmd(image, registry, username, payload, timeout, port, pull):
    """Pull the published image, run it, wait for /health, send one prediction, remove the container.
    Password: REGISTRY_PASSWORD env."""
    from .stages.health_check import HealthRequest, health_check

    req = HealthRequest(
        image=image,
        registry=registry,
        username=username,
        password=os.environ.get("REGISTRY_PASSWORD", ""),
        payload=payload,
        timeout=timeout,
        port=port,
        pull=_flag(pull, "pull"),
    )
    result = health_check(req)
    gha.add_summary(result.summary())
    return result.outputs()


@main.command()
@click.option("--project-path", default=".", show_default=True)
@click.option("--entry-point", default="main", show_default=True)
@click.option("--params", default="")
@click.option("--experiment", default="mlops-actions", show_default=True)
@flag_option(
    "--reuse", default="true", help="Reuse a finished run with the same fingerprint instead of training again."
)
@flag_option(
    "--gate",
    "gate_on",
    default="true",
    help="Champion/challenger gate in the MLflow Model Registry; 'false': propose every run.",
)
@text_option("--metric", "The metric the gate compares (required while the gate is on).")
@click.option("--direction", default="max", show_default=True, help="max or min: which way the metric is better.")
@click.option(
    "--min-improvement", default="0", show_default=True, help="Absolute margin the run must beat the champion by."
)
@text_option("--model-name", "Registered model name; empty: the project folder's name.")
@click.option("--artifacts-path", default="artifacts", show_default=True)
@text_option("--repo-path", "Folder in the repo for the PR; empty: no PR.")
@click.option("--branch", default="mlops/model-update", show_default=True)
@click.option("--base", default="")
@click.option("--labels", default="")
@flag_option("--open-pull-request", default="true")
@click.option("--repository", default=lambda: os.environ.get("GITHUB_REPOSITORY", ""))
@click.option("--api-url", default=lambda: os.environ.get("GITHUB_API_URL", "https://api.github.com"))
@click.option("--server-url", default=lambda: os.environ.get("GITHUB_SERVER_URL", "https://github.com"))
@click.option("--context-dir", default="build/image", show_default=True)
@click.option("--base-image", default="")
@click.option("--ca-bundle", default=lambda: os.environ.get("MLOPS_CA_BUNDLE", ""))
@text_option("--image", "registry/name to push (lowercased); empty: stop after render-dockerfile.")
@click.option("--registry", default="")
@click.option("--username", default="")
@click.option("--version", "version", default="")
@flag_option("--push", default="true")
@click.option(
    "--scan-fail-on",
    default="low",
    show_default=True,
    help="Scan severity that stops the chain: low (any finding), medium, high, critical, none.",
)
@env_manager_option
@tracking_options
@stage
def pipeline(**flags):
    """train (reuse) → gate → fetch → render → build + smoke test → open-pr → push, in one step (the
    root action). A losing challenger stops cleanly (decision: rejected). Secrets: GITHUB_TOKEN,
    REGISTRY_PASSWORD env."""
    from .pipeline import run_pipeline

    outputs = run_pipeline(pipeline_config(**flags))
    outputs.pop("stages", None)
    return outputs


def pipeline_config(
    *,
    params: str,
    reuse: str,
    gate_on: str,
    metric: str,
    direction: str,
    min_improvement: str,
    model_name: str,
    artifacts_path: str,
    repo_path: str,
    branch: str,
    base: str,
    labels: str,
    open_pull_request: str,
    repository: str,
    api_url: str,
    server_url: str,
    context_dir: str,
    image: str,
    registry: str,
    username: str,
    push: str,
    tracking_uri: str,
    dagshub_repo: str,
    **same: str,
):
    """The ``pipeline`` command's flags as one typed :class:`~mlops_actions.pipeline.PipelineConfig`
    (secrets from the environment). ``same``: the flags named as PipelineConfig's fields
    (project_path, entry_point, experiment, base_image, ca_bundle, version, env_manager, scan_fail_on)."""
    from .core import tracking as trk
    from .core.inputs import parse_params
    from .pipeline import GateConfig, PipelineConfig, default_model_name

    gate_cfg = None
    if _flag(gate_on, "gate"):
        name = model_name.strip() or default_model_name(same["project_path"])
        gate_cfg = GateConfig(metric=metric, model_name=name, direction=direction, min_improvement=min_improvement)
    pr = None
    if repo_path:
        pr = pr_request(
            artifacts_path,
            repo_path,
            labels,
            open_pull_request,
            branch=branch,
            base=base,
            repository=repository,
            api_url=api_url,
            server_url=server_url,
        )
    push_req = None
    if image:
        push_req = push_request(
            context_dir, push, image=image, version=same["version"], registry=registry, username=username
        )
    return PipelineConfig(
        tracking=trk.resolve(tracking_uri, dagshub_repo),
        params=parse_params(params),
        artifacts_dir=Path(artifacts_path),
        pr=pr,
        context_dir=Path(context_dir),
        push=push_req,
        reuse=_flag(reuse, "reuse"),
        gate=gate_cfg,
        **same,
    )


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
