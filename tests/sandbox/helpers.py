"""Shared helpers for the `peninsula run` option tests."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

PY = "/usr/bin/python3"
REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "peninsula" / "sandbox" / "report.schema.json"


def run_with_report(who, *args, cwd=None, env=None, timeout=120):
    """peninsula run --report FILE ARGS...; returns (proc, report dict)."""
    report = who.base / f"report-{time.monotonic_ns()}.json"
    proc = who.peninsula("run", "--report", report, "--log", who.base / "denials.jsonl", *args,
                         cwd=cwd, env=env, timeout=timeout)
    data = json.loads(report.read_text()) if report.exists() else None
    return proc, data


def processes_with(marker: str) -> list[int]:
    """Living (non-zombie) processes whose command line contains marker."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ")
            state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def wait_gone(marker: str, seconds: float = 5.0) -> list[int]:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        left = processes_with(marker)
        if not left:
            return []
        time.sleep(0.05)
    return processes_with(marker)


# -- a small JSON Schema validator: the keywords report.schema.json uses -------

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
KNOWN_KEYWORDS = {"$schema", "$id", "title", "description", "type", "enum", "required", "properties",
                  "additionalProperties", "minimum", "maximum", "items", "maxItems", "pattern"}


def validate(value, schema: dict, where: str = "$") -> list[str]:
    """Errors of value against schema (empty when valid)."""
    unknown = set(schema) - KNOWN_KEYWORDS
    if unknown:
        raise ValueError(f"{where}: validator does not know {sorted(unknown)}")
    errors = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            return [f"{where}: {value!r} is not of type {types}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                errors.append(f"{where}: missing {key!r}")
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                errors += validate(item, props[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: unexpected property {key!r}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += validate(item, schema["items"], f"{where}[{i}]")
    return errors


def load_schema() -> dict:
    return json.loads(SCHEMA.read_text())
