"""GitHub's OpenAPI description of api.github.com, loaded once per process, as a contract checker.

``contract()`` returns the shared :class:`Contract`. It finds the documented operation for a
method and concrete path, and checks requests (path and query parameters, JSON body) and
responses (status, JSON body, documented headers) against it. The description is OpenAPI 3.0,
so its ``nullable: true`` is rewritten into JSON Schema once at load time; validators are Draft
2020-12, resolve ``$ref`` against the whole document, and are compiled lazily and cached.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

FETCH_SCRIPT = Path(__file__).resolve().parents[1] / "infra" / "fetch-openapi.sh"
DOC_URI = "urn:github-openapi"
# Request bodies the description documents only in prose, accepted besides its schema.
PROSE_DOCUMENTED_BODIES = {
    # "You can also pass an `array` of labels directly" (PyGithub's add_to_labels does).
    "issues/add-labels": {"type": "array", "minItems": 1, "items": {"type": "string"}},
}


@dataclass(frozen=True)
class Operation:
    """One documented operation: ``method`` upper-case, ``template`` like ``/repos/{owner}/{repo}``."""

    method: str
    template: str
    operation_id: str
    spec: dict[str, Any] = field(repr=False)


def spec_path() -> Path:
    """The cached JSON description: ``$MLOPS_OPENAPI_JSON`` if set, else what the fetch script prints."""
    if os.environ.get("MLOPS_OPENAPI_JSON"):
        return Path(os.environ["MLOPS_OPENAPI_JSON"])
    out = subprocess.run([str(FETCH_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


@functools.lru_cache(maxsize=None)
def contract() -> Contract:
    """The process-wide contract (loading the 13 MB description takes about half a second)."""
    return Contract(json.loads(spec_path().read_text()))


def _openapi30_to_jsonschema(node: Any) -> None:
    """Rewrite OpenAPI 3.0 ``nullable: true`` in place into JSON Schema that also admits null."""
    if isinstance(node, list):
        for item in node:
            _openapi30_to_jsonschema(item)
        return
    if not isinstance(node, dict):
        return
    for value in node.values():
        _openapi30_to_jsonschema(value)
    if node.get("nullable") is not True:
        return
    del node["nullable"]
    if isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
    else:  # a $ref / allOf / oneOf without its own type
        inner = dict(node)
        node.clear()
        node["anyOf"] = [inner, {"type": "null"}]


class Contract:
    """Operation lookup and request/response validation; every check returns a list of problems."""

    def __init__(self, document: dict[str, Any]) -> None:
        _openapi30_to_jsonschema(document["components"])
        _openapi30_to_jsonschema(document["paths"])
        self.document = document
        self.version = document["info"]["version"]
        self._registry = Registry().with_resource(DOC_URI, Resource(document, specification=DRAFT202012))
        self._validators: dict[str, Draft202012Validator] = {}
        self._routes: list[tuple[tuple[int, ...], re.Pattern[str], str]] = []
        for template in document["paths"]:
            segments = template.strip("/").split("/")
            specificity = tuple(int("{" in s) for s in segments)
            pattern = "".join(
                "([^/]+?)" if part.startswith("{") else re.escape(part) for part in re.split(r"({[^}]+})", template)
            )
            self._routes.append((specificity, re.compile(pattern), template))
        self._routes.sort(key=lambda route: (route[0], route[2]))

    # -- lookup ----------------------------------------------------------------------------------

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """Follow a ``{"$ref": "#/..."}`` chain inside the document."""
        while "$ref" in node:
            node = self.pointer(node["$ref"])
        return node

    def pointer(self, ref: str) -> Any:
        """The node at JSON pointer ``ref`` (``#/components/...``)."""
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    def example(self, name: str) -> Any:
        """A deep copy of ``components/examples/<name>``'s value."""
        return json.loads(json.dumps(self.document["components"]["examples"][name]["value"]))

    def schema_properties(self, name: str) -> list[str]:
        """The property names of ``components/schemas/<name>``."""
        return list(self.document["components"]["schemas"][name]["properties"])

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation documented for ``method`` on ``path`` and its raw path parameters, if any.

        Literal segments win over templated ones (``/pulls/comments`` before ``/pulls/{n}``).
        """
        for _, regex, template in self._routes:
            found = regex.fullmatch(path.rstrip("/") or "/")
            op = found and self.document["paths"][template].get(method.lower())
            if op:
                names = re.findall(r"{([^}]+)}", template)
                params = dict(zip(names, found.groups()))
                return Operation(method.upper(), template, op["operationId"], op), params
        return None

    def operation(self, method: str, template: str) -> Operation:
        op = self.document["paths"][template][method.lower()]
        return Operation(method.upper(), template, op["operationId"], op)

    # -- validation ------------------------------------------------------------------------------

    def errors(self, pointer: str, instance: Any) -> list[str]:
        """Schema errors of ``instance`` against the schema at JSON pointer ``pointer`` (cached)."""
        validator = self._validators.get(pointer)
        if validator is None:
            schema = {"$ref": f"{DOC_URI}{pointer}"}
            validator = Draft202012Validator(schema, registry=self._registry)
            self._validators[pointer] = validator
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
        ]

    def _deref(self, pointer: str) -> str:
        """The pointer of the node that ``pointer`` ends at once its ``$ref`` chain is followed."""
        node = self.pointer(pointer)
        while "$ref" in node:
            pointer = node["$ref"]
            node = self.pointer(pointer)
        return pointer

    def _op_pointer(self, op: Operation) -> str:
        return "#/paths/" + op.template.replace("~", "~0").replace("/", "~1") + "/" + op.method.lower()

    def check_parameters(self, op: Operation, path_params: dict[str, str], query: dict[str, list[str]]) -> list[str]:
        """Problems with a request's path and query parameters (header parameters are not checked)."""
        problems: list[str] = []
        base = self._op_pointer(op)
        documented_query = set()
        for index in range(len(op.spec.get("parameters", []))):
            pointer = self._deref(f"{base}/parameters/{index}")
            param = self.pointer(pointer)
            name, where = param["name"], param["in"]
            if where == "query":
                documented_query.add(name)
            values = {"path": {k: [v] for k, v in path_params.items()}, "query": query}.get(where)
            if values is None:
                continue
            if name not in values:
                problems += [f"missing required {where} parameter {name!r}"] if param.get("required") else []
                continue
            for value in values[name]:
                coerced = _coerce(value, self.resolve(param.get("schema", {})))
                errors = self.errors(f"{pointer}/schema", coerced)
                problems += [f"{where} parameter {name}={value!r}: {e}" for e in errors]
        return problems + [f"undocumented query parameter {name!r}" for name in sorted(set(query) - documented_query)]

    def check_body(self, op: Operation, body: Any, has_body: bool) -> list[str]:
        """Problems with a request's JSON body (``body`` is already parsed)."""
        if "requestBody" not in op.spec:
            return ["request has a body but the operation documents none"] if has_body else []
        pointer = self._deref(f"{self._op_pointer(op)}/requestBody")
        request_body = self.pointer(pointer)
        if not has_body:
            return ["missing required request body"] if request_body.get("required") else []
        if "application/json" not in request_body["content"]:
            return ["request body is JSON but the operation documents no JSON body"]
        alternative = PROSE_DOCUMENTED_BODIES.get(op.operation_id)
        if alternative and not list(Draft202012Validator(alternative).iter_errors(body)):
            return []
        return [f"request body {e}" for e in self.errors(f"{pointer}/content/application~1json/schema", body)]

    def check_response(self, op: Operation | None, status: int, headers: dict[str, str], body: Any) -> list[str]:
        """Problems with a response. Undocumented error statuses (401, 5xx, ...) must be a basic-error."""
        generic = "#/components/schemas/basic-error"
        if op is None or str(status) not in op.spec["responses"]:
            if status < 400:
                return [f"status {status} is not documented for {op.operation_id if op else 'this path'}"]
            return [f"error body {e}" for e in self.errors(generic, body)]
        pointer = self._deref(f"{self._op_pointer(op)}/responses/{status}")
        response = self.pointer(pointer)
        problems = []
        lower = {k.lower(): v for k, v in headers.items()}
        for name in response.get("headers", {}):
            header_pointer = self._deref(f"{pointer}/headers/{name}")
            header = self.pointer(header_pointer)
            if name.lower() not in lower:
                problems += [f"missing required response header {name}"] if header.get("required") else []
                continue
            value = _coerce(lower[name.lower()], self.resolve(header.get("schema", {})))
            problems += [f"header {name}: {e}" for e in self.errors(f"{header_pointer}/schema", value)]
        if "application/json" in response.get("content", {}):
            problems += [f"body {e}" for e in self.errors(f"{pointer}/content/application~1json/schema", body)]
        elif status >= 400:
            problems += [f"error body {e}" for e in self.errors(generic, body)]
        return problems


def _coerce(text: str, schema: dict[str, Any]) -> Any:
    """Turn a path/query/header string into the JSON value its schema's ``type`` asks for, if it can."""
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    try:
        if "integer" in kinds:
            return int(text)
        if "number" in kinds:
            return float(text)
    except ValueError:
        return text
    if "boolean" in kinds and text in ("true", "false"):
        return text == "true"
    if "array" in kinds:
        return text.split(",")
    return text
