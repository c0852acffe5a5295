"""Jinja2 templates a user may supply (the pull request body, the Dockerfile): sandboxed, strict about
undefined variables, and every failure one InputError naming the template input."""

from __future__ import annotations

from pathlib import Path

import jinja2

from .errors import InputError
from .paths import read_text_input


def render_template(path: Path, context: dict, input_name: str) -> str:
    path = Path(path)
    text = read_text_input(path, input_name, "a Jinja2 text template (or leave it empty for the built-in one)")
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    try:
        return env.from_string(text).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(input_name, f"'{path}' line {exc.lineno}: {exc.message}", "fix the Jinja2 syntax") from exc
    except jinja2.UndefinedError as exc:
        raise InputError(
            input_name,
            f"'{path}' uses an undefined variable ({exc.message})",
            f"use only: {', '.join(sorted(context))}",
        ) from exc
    except jinja2.TemplateError as exc:
        raise InputError(
            input_name,
            f"'{path}' cannot be rendered ({exc.__class__.__name__}: {str(exc)[:160]})",
            "use only the template variables and plain Jinja2 (no include/import)",
        ) from exc
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError, RecursionError) as exc:
        raise InputError(
            input_name,
            f"'{path}' failed while rendering ({exc.__class__.__name__}: {str(exc)[:160]})",
            "fix the expression in the template",
        ) from exc
