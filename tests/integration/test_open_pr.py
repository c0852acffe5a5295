"""open-pr with real git (bare origin + clone) and the OpenAPI-checked GitHub double."""

import json
import shutil

import pytest

from conftest import git
from github_double.server import git_branches
from mlops_actions.core import manifest
from mlops_actions.core.errors import InputError, StageError
from mlops_actions.stages.open_pr import PrRequest, open_pr

REPO = "acme/reviews"
PULLS = "/repos/{owner}/{repo}/pulls"


@pytest.fixture
def gh(github_api, git_remote):
    github_api.branches_of = lambda owner, repo: git_branches(git_remote.origin)
    github_api.add_repo(REPO)
    return github_api


@pytest.fixture
def artifacts(fetched, tmp_path):
    """A private copy of the fetched artifacts that a test may change (and re-manifest)."""
    dest = tmp_path / "artifacts"
    shutil.copytree(fetched.path, dest)
    return dest


def request(gh, git_remote, source, **kw):
    base = dict(source_dir=source, repo_path="models/sentiment", workdir=git_remote.clone, repository=REPO,
                api_url=gh.url, token=gh.token, labels=["model-update"], reviewers=["alice"])
    base.update(kw)
    return PrRequest(**base)


def bump_metric(path, name, value):
    run = json.loads((path / "mlops-run.json").read_text())
    run["metrics"][name] = value
    (path / "mlops-run.json").write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")
    manifest.write(path)


def open_pulls(gh):
    return [p for p in gh.pulls[REPO] if p.state == "open"]


def test_create_then_rerun_is_unchanged(gh, git_remote, artifacts, tmp_path):
    first = open_pr(request(gh, git_remote, artifacts, body_file=tmp_path / "body.md"))
    assert first.operation == "created" and first.pr_number == 1
    assert first.pr_url == f"https://github.com/{REPO}/pull/1"
    assert git_branches(git_remote.origin)["mlops/model-update"] == first.head_sha
    tree = git("ls-tree", "-r", "--name-only", first.head_sha, cwd=git_remote.origin).splitlines()
    assert "models/sentiment/model/MLmodel" in tree and "models/sentiment/MANIFEST.sha256" in tree
    [pull] = open_pulls(gh)
    assert pull.labels == ["model-update"] and pull.requested_reviewers == ["alice"]
    body = pull.body
    assert body == (tmp_path / "body.md").read_text()
    assert "| test_accuracy |" in body and "<!-- mlops-actions:open-pr -->" in body
    assert f"https://github.com/{REPO}/blob/{first.head_sha}/models/sentiment/confusion_matrix.png?raw=true" in body
    assert "sha256" in body and "model/model.pkl" in body
    again = open_pr(request(gh, git_remote, artifacts))
    assert again.operation == "unchanged" and again.head_sha == first.head_sha and again.pr_number == 1
    assert len(gh.pulls[REPO]) == 1


def test_new_artifacts_update_the_same_pr_and_keep_manual_commits(gh, git_remote, artifacts, tmp_path):
    first = open_pr(request(gh, git_remote, artifacts))
    # a reviewer pushes a commit to the bot branch; the next run must build on it, not force-push
    human = tmp_path / "human"
    git("clone", "--quiet", "--branch", "mlops/model-update", str(git_remote.origin), str(human), cwd=tmp_path)
    (human / "NOTES.md").write_text("reviewed\n")
    git("add", ".", cwd=human)
    git("-c", "user.name=h", "-c", "user.email=h@example.invalid", "commit", "-qm", "note", cwd=human)
    git("push", "-q", "origin", "mlops/model-update", cwd=human)
    bump_metric(artifacts, "test_accuracy", 0.99)
    second = open_pr(request(gh, git_remote, artifacts))
    assert second.operation == "updated" and second.pr_number == first.pr_number
    log = git("log", "--format=%s", second.head_sha, cwd=git_remote.origin)
    assert "note" in log  # the manual commit survived
    assert len(gh.pulls[REPO]) == 1
    assert "| test_accuracy | 0.99 |" in open_pulls(gh)[0].body


def test_metric_change_against_base(gh, git_remote, artifacts):
    first = open_pr(request(gh, git_remote, artifacts))
    git("update-ref", "refs/heads/main", first.head_sha, cwd=git_remote.origin)  # "merge" the PR
    gh.pulls[REPO][0].state = "closed"
    bump_metric(artifacts, "test_accuracy", 0.5)
    second = open_pr(request(gh, git_remote, artifacts))
    assert second.operation == "created" and second.pr_number == 2
    body = open_pulls(gh)[0].body
    assert "▼" in body and "| test_accuracy | 0.5 |" in body


def test_same_artifacts_as_base_open_no_pr(gh, git_remote, artifacts):
    first = open_pr(request(gh, git_remote, artifacts))
    git("update-ref", "refs/heads/main", first.head_sha, cwd=git_remote.origin)
    gh.pulls[REPO][0].state = "closed"
    git("update-ref", "-d", "refs/heads/mlops/model-update", cwd=git_remote.origin)
    again = open_pr(request(gh, git_remote, artifacts))
    assert again.operation == "unchanged" and again.pr_number is None
    assert len(gh.pulls[REPO]) == 1


def test_422_race_adopts_the_existing_pr(gh, git_remote, artifacts):
    gh.race_next("POST", PULLS)
    result = open_pr(request(gh, git_remote, artifacts))
    assert result.pr_number == 1 and len(gh.pulls[REPO]) == 1
    assert result.operation == "updated"  # the other run created it; this one pushed to its branch


def test_5xx_after_the_write_landed_never_duplicates(gh, git_remote, artifacts):
    gh.fail_next("POST", PULLS, status=502, apply=True)
    result = open_pr(request(gh, git_remote, artifacts))
    assert result.operation == "created" and len(gh.pulls[REPO]) == 1


def test_5xx_then_success_is_retried(gh, git_remote, artifacts):
    gh.fail_next("POST", PULLS, status=503, times=2)
    result = open_pr(request(gh, git_remote, artifacts))
    assert result.operation == "created" and len(gh.pulls[REPO]) == 1
    assert sum(1 for r in gh.requests if r.method == "POST" and r.path.endswith("/pulls")) == 3


def test_rate_limit_retry_after_is_honoured(gh, git_remote, artifacts):
    gh.rate_limit_next("GET", PULLS, retry_after=1)
    result = open_pr(request(gh, git_remote, artifacts))
    assert result.operation == "created"
    assert [r.status for r in gh.requests if r.method == "GET" and r.path.endswith("/pulls")][:2] == [403, 200]


def test_persistent_5xx_fails_clearly(gh, git_remote, artifacts):
    gh.fail_next("POST", PULLS, status=502, times=10)
    with pytest.raises(StageError, match="after retries"):
        open_pr(request(gh, git_remote, artifacts))
    assert gh.pulls[REPO] == []


def _nothing_pushed(git_remote):
    return set(git_branches(git_remote.origin)) == {"main"}


@pytest.mark.parametrize("change,input_name", [
    (dict(token=""), "token"),
    (dict(token="wrong-token"), "token"),
    (dict(repository="acme/missing"), "repository"),
    (dict(repository="not a repo"), "repository"),
    (dict(base="nope"), "base"),
    (dict(repo_path="../../etc"), "repo-path"),
    (dict(repo_path=".git/hooks"), "repo-path"),
    (dict(branch="bad branch;rm"), "branch"),
    (dict(reviewers=["not valid!"]), "reviewers"),
])
def test_bad_input_pushes_nothing(gh, git_remote, artifacts, change, input_name):
    with pytest.raises(InputError) as err:
        open_pr(request(gh, git_remote, artifacts, **change))
    assert err.value.input_name == input_name
    assert _nothing_pushed(git_remote) and gh.pulls[REPO] == []


def test_manifest_mismatch_pushes_nothing(gh, git_remote, artifacts):
    (artifacts / "model" / "model.pkl").write_bytes(b"tampered")
    with pytest.raises(InputError, match="changed: model/model.pkl"):
        open_pr(request(gh, git_remote, artifacts))
    assert _nothing_pushed(git_remote)


def test_template_with_undefined_variable_pushes_nothing(gh, git_remote, artifacts, tmp_path):
    tpl = tmp_path / "body.j2"
    tpl.write_text("{{ run.run_id }} {{ no_such_thing }}")
    with pytest.raises(InputError, match="undefined variable"):
        open_pr(request(gh, git_remote, artifacts, template=tpl))
    tpl.write_text("{% for %}")
    with pytest.raises(InputError, match="template"):
        open_pr(request(gh, git_remote, artifacts, template=tpl))
    assert _nothing_pushed(git_remote)


def test_local_mode_pushes_branch_without_api(git_remote, artifacts, tmp_path):
    result = open_pr(PrRequest(source_dir=artifacts, repo_path="models/s", workdir=git_remote.clone, base="main",
                               open_pull_request=False, body_file=tmp_path / "b.md"))
    assert result.operation == "pushed" and (tmp_path / "b.md").read_text().startswith("<!-- mlops-actions:open-pr -->")
    assert "mlops/model-update" in git_branches(git_remote.origin)


def test_extra_body_files_are_added_to_the_body(gh, git_remote, artifacts, tmp_path):
    """A DVC metrics diff (the dvc stage's metrics-diff-file) lands in the PR body; an empty file adds nothing."""
    diff = tmp_path / "metrics-diff.md"
    diff.write_text("### DVC metrics against `main`\n\n| file | metric | base | workspace | change |\n|---|---|---|---|---|\n"
                    "| `metrics/eval.json` | accuracy | 0.9 | 0.95 | ▲ +0.05 |\n", encoding="utf-8")
    empty = tmp_path / "empty.md"
    empty.write_text("\n", encoding="utf-8")
    result = open_pr(request(gh, git_remote, artifacts, extra_body=[diff, empty]))
    body = open_pulls(gh)[0].body
    assert result.operation == "created"
    assert "### DVC metrics against `main`" in body and "| `metrics/eval.json` | accuracy | 0.9 | 0.95 | ▲ +0.05 |" in body
    assert body.index("### Parameters") < body.index("### DVC metrics") < body.index("<summary>Files")


def test_missing_extra_body_file_is_refused_before_any_push(gh, git_remote, artifacts, tmp_path):
    with pytest.raises(InputError, match="input 'extra-body': '.*missing.md' not found"):
        open_pr(request(gh, git_remote, artifacts, extra_body=[tmp_path / "missing.md"]))
    assert "mlops/model-update" not in git_branches(git_remote.origin) and gh.pulls[REPO] == []


# --- create-pull-request parity: aliases, closed, rebase, assignees, identities, body limit ------


def person_commits(git_remote, tmp_path, branch, name="note"):
    """Somebody pushes a commit of their own to ``branch`` (another clone, their identity)."""
    person = tmp_path / f"person-{branch.replace('/', '-')}-{name}"
    git("clone", "--quiet", "--branch", branch, str(git_remote.origin), str(person), cwd=tmp_path)
    (person / f"{name}.md").write_text(f"{name}\n")
    git("add", ".", cwd=person)
    git("-c", "user.name=Pat", "-c", "user.email=pat@example.invalid", "commit", "-qm", name, cwd=person)
    git("push", "-q", "origin", branch, cwd=person)
    return git("rev-parse", "HEAD", cwd=person)


def test_outputs_carry_create_pull_request_names(gh, git_remote, artifacts):
    out = open_pr(request(gh, git_remote, artifacts)).outputs()
    assert (out["pull-request-number"], out["pull-request-operation"], out["pull-request-branch"]) == (
        "1", "created", "mlops/model-update")
    assert out["pull-request-url"] == out["pr-url"] and out["pull-request-head-sha"] == out["head-sha"]
    again = open_pr(request(gh, git_remote, artifacts)).outputs()
    assert (again["operation"], again["pull-request-operation"]) == ("unchanged", "none")


def test_a_bot_only_branch_behind_a_moved_base_is_rebuilt_on_it(gh, git_remote, artifacts, tmp_path):
    first = open_pr(request(gh, git_remote, artifacts))
    main = person_commits(git_remote, tmp_path, "main", "changelog")  # main moves on
    bump_metric(artifacts, "test_accuracy", 0.97)
    second = open_pr(request(gh, git_remote, artifacts))
    assert (second.operation, second.rebased, second.pr_number) == ("updated", True, first.pr_number)
    head = git_branches(git_remote.origin)["mlops/model-update"]
    assert head == second.head_sha and git("rev-parse", f"{head}^", cwd=git_remote.origin) == main
    assert git("rev-list", "--count", f"main..{head}", cwd=git_remote.origin) == "1"  # one bot commit on main
    assert "rebuilt on the moved base" in second.summary()
    third = open_pr(request(gh, git_remote, artifacts))  # nothing moved since: nothing pushed
    assert (third.operation, third.rebased, third.head_sha) == ("unchanged", False, head)
    assert len(gh.pulls[REPO]) == 1


def test_a_branch_with_somebody_elses_commit_is_never_rewritten(gh, git_remote, artifacts, tmp_path):
    open_pr(request(gh, git_remote, artifacts))
    theirs = person_commits(git_remote, tmp_path, "mlops/model-update", "review")
    person_commits(git_remote, tmp_path, "main", "changelog")
    bump_metric(artifacts, "test_accuracy", 0.97)
    second = open_pr(request(gh, git_remote, artifacts))
    assert (second.operation, second.rebased) == ("updated", False)
    assert git("merge-base", "--is-ancestor", theirs, second.head_sha, cwd=git_remote.origin) == ""  # kept
    assert any(f"not the bot's ({theirs[:7]} by Pat)" in note for note in second.notes)
    assert "⚠️ `mlops/model-update` has commits that are not the bot's" in second.summary()


def test_no_diff_left_closes_the_pull_request_and_deletes_the_branch_when_asked(gh, git_remote, artifacts):
    first = open_pr(request(gh, git_remote, artifacts))
    git("update-ref", "refs/heads/main", first.head_sha, cwd=git_remote.origin)  # base got them another way
    kept = open_pr(request(gh, git_remote, artifacts))
    assert (kept.operation, kept.pr_number, kept.branch_deleted) == ("closed", 1, False)
    assert kept.outputs()["pull-request-operation"] == "closed" and open_pulls(gh) == []
    assert "mlops/model-update" in git_branches(git_remote.origin)
    gone = open_pr(request(gh, git_remote, artifacts, delete_branch=True))  # no open PR left: only the branch
    assert (gone.operation, gone.branch_deleted) == ("unchanged", True)
    assert "mlops/model-update" not in git_branches(git_remote.origin)
    assert len(gh.pulls[REPO]) == 1 and gh.pulls[REPO][0].state == "closed"


def test_assignees_author_and_committer(gh, git_remote, artifacts):
    req = request(gh, git_remote, artifacts, assignees=["alice", "bob"], author="Jane Doe <jane@example.com>",
                  committer="ML Bot <ml-bot@example.com>")
    first = open_pr(req)
    who = git("log", "-1", "--format=%an <%ae>|%cn <%ce>", first.head_sha, cwd=git_remote.origin)
    assert who == "Jane Doe <jane@example.com>|ML Bot <ml-bot@example.com>"
    assert open_pulls(gh)[0].assignees == ["alice", "bob"]
    bump_metric(artifacts, "test_accuracy", 0.97)
    open_pr(request(gh, git_remote, artifacts, assignees=["alice", "bob"], committer="ML Bot <ml-bot@example.com>"))
    calls = [r for r in gh.requests if r.operation == "issues/add-assignees"]
    assert len(calls) == 1  # already assigned: not asked again


@pytest.mark.parametrize("field, value", [("author", "Jane Doe"), ("committer", "<bot@example.com>"),
                                          ("assignees", ["not a login"])])
def test_bad_identity_or_assignee_pushes_nothing(gh, git_remote, artifacts, field, value):
    with pytest.raises(InputError, match=f"input '{field}'"):
        open_pr(request(gh, git_remote, artifacts, **{field: value}))
    assert "mlops/model-update" not in git_branches(git_remote.origin) and gh.pulls[REPO] == []


def test_a_body_over_githubs_limit_is_cut_with_a_note(gh, git_remote, artifacts, tmp_path):
    huge = tmp_path / "huge.md"
    huge.write_text("### Long report\n" + "".join(f"| row {i} | {'x' * 60} |\n" for i in range(1500)))
    result = open_pr(request(gh, git_remote, artifacts, extra_body=[huge], body_file=tmp_path / "body.md"))
    body = open_pulls(gh)[0].body
    assert len(body) <= 65_536 < len((tmp_path / "body.md").read_text())  # the file keeps it whole
    assert "✂️ This body was cut to GitHub's 65,536-character limit" in body and body.startswith("<!-- mlops")
    assert any("cut to GitHub's 65,536-character limit" in note for note in result.notes)


def test_verdict_block_heads_the_body(gh, git_remote, artifacts):
    verdict = json.dumps({
        "gate": {"promoted": "true", "reason": "accuracy 0.91 > champion 0.89 (v3)", "challenger-value": "0.91",
                 "champion-value": "0.89", "champion-version": "3", "metric": "accuracy", "delta": "+0.02",
                 "run-url": "http://mlflow.example/#/experiments/1/runs/abc",
                 "champion-run-url": "http://mlflow.example/#/experiments/1/runs/def"},
        "data": {"data-valid": "true", "failed-checks": "0", "failures": "", "drift-detected": "true"},
        "scan": {"result": "passed", "findings": "0", "scanned": "1", "highest": ""},
        "image": {"image": "ghcr.io/acme/sentiment@sha256:" + "ab" * 32, "digest": "sha256:" + "ab" * 32,
                  "smoke": "passed: 2 example row(s) predicted"},
        "health": {"healthy": "true", "latency-ms": "12", "challenger-agreement": "0.975"},
    })
    open_pr(request(gh, git_remote, artifacts, verdict=verdict))
    body = open_pulls(gh)[0].body
    assert body.index("### Verdict") < body.index("### Metrics")  # the first screen decides
    assert ("| 🏆 | gate | **beats the champion**: accuracy 0.91 > champion 0.89 (v3) (Δ +0.02) · "
            "[challenger run](http://mlflow.example/#/experiments/1/runs/abc) · "
            "[champion v3 run](http://mlflow.example/#/experiments/1/runs/def) |") in body
    assert "| ⚠️ | data | valid; drift detected |" in body
    assert "| ✅ | scan | passed: 1 model file(s), 0 finding(s) |" in body
    # the image by digest, its smoke test and the health check of the pushed image, on one row
    # and, the image carrying the model it replaces in shadow (the gate's champion-version), their agreement
    assert (f"| ✅ | image | `ghcr.io/acme/sentiment@sha256:{'ab' * 32}`; smoke test passed: 2 example row(s) "
            "predicted; health check passed; the previous champion (v3) beside it in shadow agreed on 97.5 % of "
            "the probe rows |") in body
    rows = body[body.index("### Verdict"):body.index("### Metrics")]
    assert [line.split(" | ")[1] for line in rows.splitlines() if line.startswith("| ") and " | " in line][1:] == \
        ["gate", "data", "scan", "image"]


def test_a_failed_health_check_is_the_image_rows_verdict():
    from mlops_actions.stages.open_pr import verdict_rows

    [row] = verdict_rows(json.dumps({"image": {"image": "r/m@sha256:00", "smoke": "passed: 1 example row(s) predicted"},
                                     "health": {"healthy": "false", "latency-ms": ""}}))
    assert row == {"icon": "❌", "check": "image",
                   "text": "`r/m@sha256:00`; smoke test passed: 1 example row(s) predicted; health check **failed**"}
    assert verdict_rows(json.dumps({"image": {}, "health": {"healthy": "true"}})) == []  # no image built: no row


@pytest.mark.parametrize("verdict, problem", [("{not json", "is not JSON"), ('{"gate": "won"}', "is not a JSON object of objects")])
def test_bad_verdict_pushes_nothing(gh, git_remote, artifacts, verdict, problem):
    with pytest.raises(InputError, match=f"input 'verdict': {problem}"):
        open_pr(request(gh, git_remote, artifacts, verdict=verdict))
    assert "mlops/model-update" not in git_branches(git_remote.origin) and gh.pulls[REPO] == []


def test_chosen_metrics_head_the_table_and_autolog_noise_is_folded(gh, git_remote, artifacts, capsys):
    run = json.loads((artifacts / "mlops-run.json").read_text())
    assert any(name.startswith("training_") for name in run["metrics"]), run["metrics"]  # sklearn autologging's
    open_pr(request(gh, git_remote, artifacts, metrics=["test_f1*", "test_accuracy", "no_such_metric"]))
    body = open_pulls(gh)[0].body
    table = body[body.index("### Metrics"):body.index("### Parameters")]
    main, _, folded = table.partition("<details>")
    rows = [line.split("|")[1].strip() for line in main.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[:3] == ["metric", "test_f1", "test_accuracy"], rows  # the chosen, in the chosen order
    assert not any(r.startswith("training_") for r in rows), rows
    noise = sorted(n for n in run["metrics"] if n.startswith("training_"))
    assert f"{len(noise)} more metrics logged by autologging" in folded
    assert all(f"| {n} |" in folded for n in noise), folded
    said = capsys.readouterr()
    assert "input 'metrics': no_such_metric matched no metric" in said.out + said.err


def test_the_trend_plot_sits_under_the_verdict_not_among_the_plots(gh, git_remote, artifacts):
    shutil.copyfile(artifacts / "confusion_matrix.png", artifacts / "metric_trend.png")  # fetch-artifacts' file name
    manifest.write(artifacts)
    verdict = json.dumps({"gate": {"promoted": "true", "reason": "first champion"}})
    result = open_pr(request(gh, git_remote, artifacts, verdict=verdict))
    body = open_pulls(gh)[0].body
    trend = f"![the deciding metric over the experiment's last runs](https://github.com/{REPO}/blob/{result.head_sha}/models/sentiment/metric_trend.png?raw=true)"
    assert body.index("### Verdict") < body.index(trend) < body.index("### Metrics"), body[:1500]
    plots = body[body.index("### Plots"):body.index("<details><summary>Files")]
    assert "metric_trend.png" not in plots and "confusion_matrix.png" in plots
