"""The one place that speaks the GitHub Actions runner protocol.

Outputs go to ``$GITHUB_OUTPUT`` (heredoc form for multi-line values), Markdown to
``$GITHUB_STEP_SUMMARY``, log groups and masks to stdout as workflow commands. Outside Actions
(no ``GITHUB_ACTIONS``) the file-based calls are no-ops and groups print a plain heading, so the
same code runs from a laptop.

Every value that goes into a workflow command (``::group::``, ``::error::``, ``::warning::``,
``::notice::``) is escaped here, by GitHub's rules (``escape_data``: ``%``, CR, LF; and
``escape_property`` for ``key=value`` properties such as ``title``: also ``:`` and ``,``), so no
input, file name or server message can end a command early or start a forged one on a new line.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence


def in_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _append(env_var: str, text: str) -> bool:
    path = os.environ.get(env_var)
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
    return True


def format_output(name: str, value: object) -> str:
    """One ``$GITHUB_OUTPUT`` record; non-strings are written as compact JSON."""
    if not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if "\n" in value or "\r" in value:
        delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
        return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
    return f"{name}={value}\n"


def set_outputs(outputs: Mapping[str, object]) -> None:
    """Write step outputs; outside Actions print them as ``name=value`` lines for a person."""
    text = "".join(format_output(k, v) for k, v in outputs.items())
    if not _append("GITHUB_OUTPUT", text):
        for name, value in outputs.items():
            shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
            print(f"{name}={shown}")


def add_summary(markdown: str) -> None:
    if not markdown.endswith("\n"):
        markdown += "\n"
    _append("GITHUB_STEP_SUMMARY", markdown)


def mask(value: str | None) -> None:
    """Register a secret with the runner so it is replaced by *** in every log line.

    The value is escaped like any command's data (the runner unescapes ``%25``, ``%0D``, ``%0A``
    before it registers the mask), so a secret holding ``%`` is masked as written and one holding
    a line break is masked whole and cannot end the command early nor start a forged one; each of
    its lines is registered too, since the runner masks line by line."""
    if not value:
        return
    if in_actions():
        text = str(value)
        parts = [text] + [line for line in text.splitlines() if line != text]
        for part in dict.fromkeys(parts):
            if part.strip():
                sys.stdout.write(f"::add-mask::{escape_data(part)}\n")
        sys.stdout.flush()


def escape_data(text: object) -> str:
    """A workflow command's message (GitHub's toolkit ``escapeData``)."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: object) -> str:
    """A workflow command's ``key=value`` property (GitHub's toolkit ``escapeProperty``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


_escape_data = escape_data  # the name used before the property variant existed


def _plain(text: object) -> str:
    """One log line outside Actions: line breaks shown as spaces."""
    return " ".join(str(text).replace("\r", "\n").split("\n"))


def _annotation(command: str, message: str, title: str | None, outside: str, label: str) -> None:
    """``::error::``, ``::warning::`` or ``::notice::`` (with an escaped ``title=``) in Actions; elsewhere
    one ``label`` line on the ``outside`` stream (stderr or stdout)."""
    if in_actions():
        prefix = f"::{command} title={escape_property(title)}::" if title else f"::{command}::"
        sys.stdout.write(prefix + _escape_data(message) + "\n")
        sys.stdout.flush()
        return
    stream = getattr(sys, outside)
    stream.write(f"{label}{message}\n")
    stream.flush()


def error(message: str, title: str | None = None) -> None:
    _annotation("error", message, title, "stderr", "error: ")


def warning(message: str) -> None:
    _annotation("warning", message, None, "stderr", "warning: ")


def notice(message: str) -> None:
    _annotation("notice", message, None, "stdout", "")


@contextlib.contextmanager
def group(title: str) -> Iterator[None]:
    """A collapsible log group in Actions; a timed heading elsewhere."""
    start = time.monotonic()
    if in_actions():
        sys.stdout.write(f"::group::{escape_data(title)}\n")
    else:
        sys.stdout.write(f"== {_plain(title)}\n")
    sys.stdout.flush()
    try:
        yield
    finally:
        elapsed = time.monotonic() - start
        if in_actions():
            sys.stdout.write(f"{escape_data(title)}: {elapsed:.1f}s\n::endgroup::\n")
        else:
            sys.stdout.write(f"   ({elapsed:.1f}s)\n")
        sys.stdout.flush()


def log(text: object) -> None:
    """Print text that holds values from inputs, files or servers to the log so that no line of it
    can be read as a workflow command (see :func:`safe_lines`)."""
    print(safe_lines(text), flush=True)


def safe_lines(text: object) -> str:
    """``text`` with every line the runner would take for a workflow command defused: the runner
    trims leading white space and then reads ``::name::`` at the start of a line, or the legacy
    ``##[name]`` anywhere in it. Such a line is shown after ``» ``, and ``##[`` as ``#\u200b#[``."""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out = []
    for line in lines:
        line = line.replace("##[", "#\u200b#[")
        out.append("» " + line if line.strip().startswith("::") else line)
    return "\n".join(out)


def md_inline(text: object) -> str:
    """A value shown inside one Markdown line of the step summary: line breaks become spaces and
    HTML-significant characters and backticks are escaped, so a value cannot add a heading, a
    tag or end the code span it is shown in (pipes are escaped by :func:`md_table`)."""
    flat = " ".join(str(text).replace("\r", "\n").split("\n"))
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "\u02cb")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; pipes in cells are escaped."""

    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def github_context() -> dict[str, str]:
    """The run's identity from the default environment variables (empty strings outside Actions)."""
    env = os.environ
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    repo = env.get("GITHUB_REPOSITORY", "")
    run_id = env.get("GITHUB_RUN_ID", "")
    return {
        "sha": env.get("GITHUB_SHA", ""),
        "ref": env.get("GITHUB_REF", ""),
        "ref_name": env.get("GITHUB_REF_NAME", ""),
        "repository": repo,
        "server_url": server,
        "workflow": env.get("GITHUB_WORKFLOW", ""),
        "run_id": run_id,
        "run_number": env.get("GITHUB_RUN_NUMBER", ""),
        "actor": env.get("GITHUB_ACTOR", ""),
        "event_name": env.get("GITHUB_EVENT_NAME", ""),
        "run_url": f"{server}/{repo}/actions/runs/{run_id}" if repo and run_id else "",
    }
