"""CycloneDX 1.5 SBOM (JSON) of a Python environment, and reading one back for summaries.

Standalone: standard library only, so render-dockerfile copies this file into the build context
(``sbom.py``) and the builder stage runs it with the image's own venv interpreter::

    python sbom.py /opt/venv /tmp/requirements.txt > /sbom.cdx.json

It lists the distributions installed in the venv's site-packages only (never the base image's
system packages, nor the interpreter running it when that is another one): one ``library``
component each (name, version, ``pkg:pypi`` purl as bom-ref, licenses from License-Expression,
License or the license classifiers), the dependency graph from Requires-Dist (markers evaluated
for the environment, extras followed from what requested them, only installed packages), and
the packages named in requirements.txt marked top-level (property ``mlops-actions:top-level``)
and listed as the dependencies of the environment component (``metadata.component``).

The output is reproducible: no timestamp, sorted components, and a serial number derived from the
content (uuid5), so the same requirements give a byte-identical file and the build layer holding
it stays cached."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

SPEC_VERSION = "1.5"
TOP_LEVEL = "mlops-actions:top-level"
ENV_REF = "python-environment"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/mlops-actions/sbom")
_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[([^\]]*)\])?")


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def purl(name: str, version: str) -> str:
    return f"pkg:pypi/{normalize(name)}@{version}"


def site_packages(venv: str | os.PathLike[str]) -> list[str]:
    """The venv's site-packages folders (lib/pythonX.Y/site-packages, lib64, Windows Lib)."""
    root = Path(venv)
    found = sorted(
        {str(p) for pattern in ("lib*/python*/site-packages", "Lib/site-packages") for p in root.glob(pattern)}
    )
    return [p for p in found if Path(p).is_dir()]


def _requirement(text: str) -> tuple[str, set[str], str] | None:
    """(normalized name, extras, marker) of a requirement line; None for blanks, comments, options."""
    line = text.split(" #", 1)[0].strip()
    if not line or line.startswith(("#", "-")):
        return None
    match = _NAME.match(line)
    if not match:
        return None
    extras = {normalize(e) for e in (match.group(2) or "").split(",") if e.strip()}
    marker = line.split(";", 1)[1].strip() if ";" in line else ""
    return normalize(match.group(1)), extras, marker


def top_level(requirements: str) -> dict[str, set[str]]:
    """Names (normalized) of a requirements.txt text, with the extras they ask for."""
    out: dict[str, set[str]] = {}
    for raw in requirements.splitlines():
        req = _requirement(raw)
        if req:
            out.setdefault(req[0], set()).update(req[1])
    return out


# -- PEP 508 environment markers, evaluated without the packaging library ---------------------

_TOKEN = re.compile(
    r"\s*(?:(\()|(\))|('[^']*'|\"[^\"]*\")|(===|==|!=|<=|>=|~=|<|>|not\s+in\b|in\b)|(and\b|or\b)|([A-Za-z_.]+))"
)


def environment() -> dict[str, str]:
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": ".".join(str(x) for x in sys.implementation.version[:3]),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def _version_key(text: str) -> tuple:
    parts = re.findall(r"\d+", text.split("+", 1)[0])
    return tuple(int(p) for p in parts[:4]) + (0,) * (4 - min(len(parts), 4))


def _compare(left: str, op: str, right: str) -> bool:
    op = " ".join(op.split())
    if op == "in":
        return left in right
    if op == "not in":
        return left not in right
    if re.fullmatch(r"[0-9][0-9.]*\*?", right) and re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", left):
        if right.endswith("*"):  # == 3.* style prefix match
            prefix = right.rstrip("*").rstrip(".")
            same = (left + ".").startswith(prefix + ".")
            return same if op == "==" else (not same if op == "!=" else False)
        a, b = _version_key(left), _version_key(right)
        if op == "~=":
            keep = max(len(re.findall(r"\d+", right)) - 1, 1)
            return a >= b and a[:keep] == b[:keep]
        return {"==": a == b, "===": left == right, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[
            op
        ]
    return {"==": left == right, "===": left == right, "!=": left != right}.get(op, False)


def marker_true(marker: str, env: dict[str, str], extras: set[str]) -> bool:
    """PEP 508 marker against ``env``; ``extra == "x"`` is true for x in ``extras``. Raises
    ValueError on a marker it cannot parse."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = marker.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse marker {marker!r}")
        pos = m.end()
        kind = ("(", ")", "str", "op", "bool", "var")[m.lastindex - 1]  # type: ignore[operator]
        tokens.append((kind, m.group(m.lastindex or 0)))
    i = 0

    def value() -> tuple[str, bool]:  # (text, is the extra variable)
        nonlocal i
        if i >= len(tokens):
            raise ValueError(f"marker {marker!r} ends early")
        kind, tok = tokens[i]
        i += 1
        if kind == "str":
            return tok[1:-1], False
        if kind == "var":
            if tok == "extra":
                return "", True
            if tok not in env:
                raise ValueError(f"unknown marker variable {tok!r}")
            return env[tok], False
        raise ValueError(f"unexpected {tok!r} in marker {marker!r}")

    def atom() -> bool:
        nonlocal i
        if i < len(tokens) and tokens[i][0] == "(":
            i += 1
            result = expr()
            if i >= len(tokens) or tokens[i][0] != ")":
                raise ValueError(f"unbalanced marker {marker!r}")
            i += 1
            return result
        left, left_extra = value()
        if i >= len(tokens) or tokens[i][0] != "op":
            raise ValueError(f"no operator in marker {marker!r}")
        op = tokens[i][1]
        i += 1
        right, right_extra = value()
        if left_extra or right_extra:
            other = normalize(right if left_extra else left)
            hit = other in extras
            return hit if op == "==" else (not hit if op == "!=" else False)
        return _compare(left, op, right)

    def conj() -> bool:
        nonlocal i
        result = atom()
        while i < len(tokens) and tokens[i] == ("bool", "and"):
            i += 1
            result = atom() and result
        return result

    def expr() -> bool:
        nonlocal i
        result = conj()
        while i < len(tokens) and tokens[i] == ("bool", "or"):
            i += 1
            result = conj() or result
        return result

    result = expr()
    if i != len(tokens):
        raise ValueError(f"trailing text in marker {marker!r}")
    return result


# -- the document ----------------------------------------------------------------------------


def _licenses(meta: Any) -> list[dict]:
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return [{"expression": expression}]
    names: list[str] = []
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 100 and text.upper() not in ("UNKNOWN", "NONE"):
        names.append(text)  # a short name; a full license text is left to the classifiers
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            name = classifier.split("::")[-1].strip()
            if name and name != "OSI Approved":
                names.append(name)
    unique = list(dict.fromkeys(names))
    return [{"license": {"name": n}} for n in unique]


def _meta(dist: metadata.Distribution) -> Any:
    return dist.metadata


def generate(venv: str | os.PathLike[str], requirements: str = "", *, paths: list[str] | None = None) -> dict:
    """The SBOM of the distributions installed in ``venv`` (or in ``paths``, site-packages folders);
    ``requirements``: the text of the requirements.txt the venv was installed from (top level)."""
    where = paths if paths is not None else site_packages(venv)
    dists: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=list(where)):
        name = _meta(dist).get("Name")
        if name and normalize(name) not in dists:  # the first on the path wins, as for import
            dists[normalize(name)] = dist
    env = environment()
    wanted = top_level(requirements)
    # requested extras: from requirements.txt, then from the Requires-Dist that became active
    extras: dict[str, set[str]] = {n: set(e) for n, e in wanted.items()}
    edges: dict[str, set[str]] = {n: set() for n in dists}
    changed = True
    while changed:
        changed = False
        for name, dist in dists.items():
            for line in dist.requires or []:
                req = _requirement(line)
                if not req or req[0] not in dists:
                    continue
                dep, dep_extras, marker = req
                try:
                    active = not marker or marker_true(marker, env, extras.get(name, set()))
                except ValueError:
                    active = True  # an unreadable marker: keep the edge to a package that is installed
                if not active:
                    continue
                if dep not in edges[name]:
                    edges[name].add(dep)
                    changed = True
                if not dep_extras <= extras.setdefault(dep, set()):
                    extras[dep] |= dep_extras
                    changed = True
    refs = {n: purl(n, d.version) for n, d in dists.items()}
    components = []
    for name in sorted(dists):
        dist = dists[name]
        meta: Any = dist.metadata  # an email.message.Message (typeshed's PackageMetadata lacks get)
        component: dict = {
            "type": "library",
            "bom-ref": refs[name],
            "name": meta.get("Name"),
            "version": dist.version,
            "purl": refs[name],
        }
        summary = (meta.get("Summary") or "").strip()
        if summary and summary.upper() != "UNKNOWN":
            component["description"] = " ".join(summary.split())
        licenses = _licenses(meta)
        if licenses:
            component["licenses"] = licenses
        if name in wanted:
            component["properties"] = [{"name": TOP_LEVEL, "value": "true"}]
        components.append(component)
    python = env["python_full_version"]
    dependencies = [{"ref": ENV_REF, "dependsOn": sorted(refs[n] for n in wanted if n in refs)}]
    dependencies += [{"ref": refs[n], "dependsOn": sorted(refs[d] for d in edges[n])} for n in sorted(dists)]
    body = {"components": components, "dependencies": dependencies, "python": python}
    serial = uuid.uuid5(_NAMESPACE, json.dumps(body, sort_keys=True, separators=(",", ":")))
    return {
        "$schema": f"http://cyclonedx.org/schema/bom-{SPEC_VERSION}.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        "metadata": {
            # No timestamp: it would change the file, and so the image layer, at every build of the
            # same requirements; the image's org.opencontainers.image.created label dates it.
            "tools": {
                "components": [
                    {
                        "type": "application",
                        "group": "mlops-actions",
                        "name": "mlops-actions",
                        "description": "mlops_actions/core/sbom.py (render-dockerfile)",
                    }
                ]
            },
            "component": {
                "type": "application",
                "bom-ref": ENV_REF,
                "name": "python-environment",
                "version": python,
                "description": f"Python {python} environment {Path(venv)} ({len(components)} distributions)",
                "properties": [
                    {"name": "mlops-actions:venv", "value": str(venv)},
                    {"name": "mlops-actions:python", "value": f"{env['implementation_name']} {python}"},
                ],
            },
        },
        "components": components,
        "dependencies": dependencies,
    }


def dumps(bom: dict) -> str:
    return json.dumps(bom, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


# -- reading one back ------------------------------------------------------------------------


def parse(text: str | bytes) -> dict:
    """A CycloneDX JSON document; ValueError when it is not one."""
    bom = json.loads(text)
    if (
        not isinstance(bom, dict)
        or bom.get("bomFormat") != "CycloneDX"
        or not isinstance(bom.get("components", []), list)
    ):
        raise ValueError("not a CycloneDX JSON document")
    return bom


def packages(bom: dict) -> list[tuple[str, str]]:
    """(name, version) of every component, sorted by normalized name."""
    comps = [c for c in bom.get("components") or [] if isinstance(c, dict)]
    return sorted(((str(c.get("name", "")), str(c.get("version", ""))) for c in comps), key=lambda p: normalize(p[0]))


def top_level_packages(bom: dict) -> list[tuple[str, str]]:
    """(name, version) of the components marked top level (the requirements.txt entries), sorted;
    for an SBOM from another tool, the environment component's direct dependencies."""
    comps = [c for c in bom.get("components") or [] if isinstance(c, dict)]
    marked = [
        c
        for c in comps
        if any(p.get("name") == TOP_LEVEL and p.get("value") == "true" for p in c.get("properties") or [])
    ]
    if not marked:
        root = ((bom.get("metadata") or {}).get("component") or {}).get("bom-ref")
        direct = next((d.get("dependsOn") or [] for d in bom.get("dependencies") or [] if d.get("ref") == root), [])
        marked = [c for c in comps if c.get("bom-ref") in set(direct)]
    return sorted(((str(c.get("name", "")), str(c.get("version", ""))) for c in marked), key=lambda p: normalize(p[0]))


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: sbom.py VENV [REQUIREMENTS_TXT] > sbom.cdx.json", file=sys.stderr)
        return 2
    venv = argv[1]
    if not site_packages(venv):
        print(f"sbom.py: no site-packages under {venv}", file=sys.stderr)
        return 1
    requirements = Path(argv[2]).read_text(encoding="utf-8") if len(argv) == 3 else ""
    sys.stdout.write(dumps(generate(venv, requirements)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
