"""The API paths and fields the real-peer harness relies on exist in the running `/openapi.json`.

tests/peers/api.py is the only place that names them; when the API changes shape this test says
exactly which name moved, instead of a peer test failing somewhere in the middle.
"""

from __future__ import annotations

from typing import Any

from tests.peers.api import API_CONTRACT, RESPONSE_CONTRACT, VoiplabApi


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _properties(spec: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    schema = _resolve(spec, schema)
    props = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        props |= _properties(spec, part)
    return props


def test_harness_paths_and_fields_exist_in_openapi(api: VoiplabApi) -> None:
    spec = api.openapi()
    problems: list[str] = []
    for method, path, fields in API_CONTRACT:
        op = spec.get("paths", {}).get(path, {}).get(method)
        if op is None:
            problems.append(f"{method.upper()} {path}: missing")
            continue
        if fields:
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            have = _properties(spec, body.get("schema", {}))
            problems += [f"{method.upper()} {path}: no request field {f!r}" for f in fields if f not in have]
    schemas = spec.get("components", {}).get("schemas", {})
    for name, fields in RESPONSE_CONTRACT.items():
        if name not in schemas:
            problems.append(f"schema {name}: missing")
            continue
        have = _properties(spec, schemas[name])
        problems += [f"schema {name}: no field {f!r}" for f in fields if f not in have]
    assert not problems, "\n".join(problems)
