"""A small JSON reader and schema check for every JSON file mire reads (edit logs, model metadata).

No dependency: a schema is a plain dict in a subset of JSON Schema's vocabulary
(``type``, ``properties``, ``required``, ``additionalProperties``, ``items``, ``minItems``,
``maxItems``, ``enum``, ``minimum``, ``maximum``, ``anyOf``). The nesting depth of the text is
checked *before* parsing (``json.loads`` recurses and would raise ``RecursionError`` on a
deeply nested file), and every error names the file and the entry, e.g.
``log.json: edits[3]: expected an object, got str``.

Examples
--------
>>> schema = {"type": "object", "required": ["edits"],
...           "properties": {"edits": {"type": "array", "items": {"type": "object"}}}}
>>> validate({"edits": [{}, "merge"]}, schema)
Traceback (most recent call last):
...
mire._schema.SchemaError: edits[1]: expected an object, got str
"""

from __future__ import annotations

import json
import math
import os
import re

#: deepest nesting of arrays / objects accepted in a JSON file
MAX_DEPTH = 32
#: largest JSON file read (bytes)
MAX_BYTES = 256 * 2**20

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
_NAMES = {dict: "an object", list: "an array", str: "str", bool: "bool", type(None): "null", int: "int", float: "float"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


class SchemaError(ValueError):
    """A JSON document does not have the expected structure (the message names the entry)."""


def _kind(value) -> str:
    return _NAMES.get(type(value), type(value).__name__)


def _is(value, t: str) -> bool:
    if t == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value == int(value))
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, _TYPES[t])


def _expected(t) -> str:
    names = {"object": "an object", "array": "an array", "string": "a string", "integer": "an integer",
             "number": "a finite number", "boolean": "true or false", "null": "null"}
    ts = [t] if isinstance(t, str) else list(t)
    return " or ".join(names[x] for x in ts)


def json_depth(text: str) -> int:
    """Deepest nesting of ``[`` / ``{`` in JSON text (strings skipped), without parsing it."""
    stripped = _STRING.sub('""', text)
    depth = best = 0
    # a linear scan over brackets only: cheap even for large files
    for ch in re.findall(r"[\[\]{}]", stripped):
        depth += 1 if ch in "[{" else -1
        best = max(best, depth)
    return best


def validate(value, schema: dict, *, where: str = "", depth: int = 0, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`SchemaError` naming the first entry of ``value`` that ``schema`` refuses."""
    label = where or "the document"
    if depth > max_depth:
        raise SchemaError(f"{label}: nested deeper than {max_depth} levels")
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                validate(value, option, where=where, depth=depth, max_depth=max_depth)
                return
            except SchemaError as exc:
                errors.append(str(exc))
        raise SchemaError(min(errors, key=len))
    t = schema.get("type")
    if t is not None:
        ts = [t] if isinstance(t, str) else list(t)
        if not any(_is(value, x) for x in ts):
            raise SchemaError(f"{label}: expected {_expected(t)}, got {_kind(value)}"
                              + (f" {value!r:.40}" if isinstance(value, (int, float, str)) else ""))
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{label}: must be one of {', '.join(map(repr, schema['enum']))}, got {value!r:.40}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaError(f"{label}: must be >= {schema['minimum']}, got {value!r}")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaError(f"{label}: must be <= {schema['maximum']}, got {value!r}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                raise SchemaError(f"{where + ': ' if where else ''}missing the {key!r} entry")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = f"{where}.{key}" if where else str(key)
            if key in props:
                validate(item, props[key], where=sub, depth=depth + 1, max_depth=max_depth)
            elif extra is False:
                raise SchemaError(f"{label}: unexpected entry {key!r}")
            elif isinstance(extra, dict):
                validate(item, extra, where=sub, depth=depth + 1, max_depth=max_depth)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise SchemaError(f"{label}: needs at least {schema['minItems']} items, got {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise SchemaError(f"{label}: holds at most {schema['maxItems']} items, got {len(value)}")
        if "items" in schema:
            for k, item in enumerate(value):
                validate(item, schema["items"], where=f"{where}[{k}]", depth=depth + 1, max_depth=max_depth)


def load_json(path, schema: dict | None = None, *, what: str = "JSON file", max_depth: int = MAX_DEPTH,
              max_bytes: int = MAX_BYTES, allow_nan: bool = False):
    """Read a JSON file and check it against ``schema``; every error names the file (and entry).

    Raises ``FileNotFoundError`` when missing and a ``ValueError`` (:class:`SchemaError` for
    structure) when too large, not UTF-8, not JSON, nested deeper than ``max_depth``, holding
    NaN / Infinity (unless ``allow_nan``), or refused by ``schema``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    size = os.path.getsize(path)
    if size > max_bytes:
        raise ValueError(f"{path}: {what} is {size} bytes, more than the {max_bytes} accepted")
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    depth = json_depth(text)
    if depth > max_depth:
        raise SchemaError(f"{path}: {what} is nested {depth} levels deep, more than the {max_depth} accepted")

    def _no_constant(name):
        raise ValueError(f"{name} is not a JSON number")

    try:
        doc = json.loads(text) if allow_nan else json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: {what} is not valid JSON ({exc})") from None
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: {what} is not valid JSON ({exc})") from None
    if schema is not None:
        try:
            validate(doc, schema, max_depth=max_depth)
        except SchemaError as exc:
            raise SchemaError(f"{path}: {exc}") from None
    return doc
