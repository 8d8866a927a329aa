"""The vendored Discord OpenAPI spec and request/response validation against it."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, relevance

# --------------------------------------------------------------------------------------------------
# OpenAPI validation


def default_spec_path() -> Path:
    """``$DISCORD_OPENAPI_SPEC`` or the vendored ``<repo>/tests/specs/discord-openapi.json``."""
    env = os.environ.get("DISCORD_OPENAPI_SPEC")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    return repo / "tests" / "specs" / "discord-openapi.json"


class OpenAPISpec:
    """Discord's OpenAPI 3.1 spec with lazily compiled, cached request/response validators."""

    def __init__(self, path: Path) -> None:
        raw = json.loads(path.read_bytes())
        self.path = path
        self.operations: dict[str, dict[str, Any]] = {}
        for item in raw["paths"].values():
            for op in item.values():
                if isinstance(op, dict) and "operationId" in op:
                    self.operations[op["operationId"]] = op
        components = raw["components"]
        self._response_components = components
        schemas = dict(components["schemas"])
        # Relaxation (documented in the package docstring): snowflakes may be sent as integers.
        schemas["SnowflakeType"] = {
            "anyOf": [components["schemas"]["SnowflakeType"], {"type": "integer", "minimum": 0}]
        }
        self._request_components = {**components, "schemas": schemas}
        self._validators: dict[tuple[str, str, str], Draft202012Validator | None] = {}

    def _validator(self, kind: str, operation: str, key: str) -> Draft202012Validator | None:
        cache_key = (kind, operation, key)
        if cache_key not in self._validators:
            op = self.operations[operation]
            schema: dict[str, Any] | None = None
            if kind == "request":
                media = op.get("requestBody", {}).get("content", {}).get(key)
                schema = media.get("schema") if media else None
                components = self._request_components
            else:
                response = op.get("responses", {}).get(key) or {}
                if "$ref" in response:  # shared responses (errors) are not validated
                    response = {}
                media = response.get("content", {}).get("application/json")
                schema = media.get("schema") if media else None
                components = self._response_components
            self._validators[cache_key] = (
                Draft202012Validator({**schema, "components": components}) if schema is not None else None
            )
        return self._validators[cache_key]

    def body_required(self, operation: str) -> bool:
        """Whether the operation declares a required request body."""
        return bool(self.operations[operation].get("requestBody", {}).get("required"))

    def accepts_content_type(self, operation: str, content_type: str) -> bool:
        """Whether the operation takes a body of this media type."""
        return content_type in self.operations[operation].get("requestBody", {}).get("content", {})

    def validate_request(self, operation: str, content_type: str, body: Any) -> list[str]:
        """Return readable errors for ``body`` sent to ``operation`` as ``content_type``."""
        validator = self._validator("request", operation, content_type)
        return [] if validator is None else self._describe(validator, body)

    def validate_response(self, operation: str, status: int, body: Any) -> list[str]:
        """Return readable errors for a response of ``operation`` with ``status``."""
        validator = self._validator("response", operation, str(status))
        return [] if validator is None else self._describe(validator, body)

    @staticmethod
    def _describe(validator: Draft202012Validator, body: Any) -> list[str]:
        out = []
        for error in sorted(validator.iter_errors(body), key=relevance):
            deep = _most_specific(error)
            where = "/".join(str(p) for p in deep.absolute_path) or "<root>"
            message = deep.message
            if len(message) > 200:  # e.g. "'xxxx…' is too long": say which keyword failed instead
                message = f"{deep.validator}={deep.validator_value!r} failed for {repr(deep.instance)[:60]}…"
            out.append(f"{where}: {message}")
            if len(out) >= 10:
                break
        return out


def _most_specific(error: ValidationError) -> ValidationError:
    """Descend into oneOf/anyOf alternatives to the error that explains the failure.

    Alternatives whose discriminator (``type`` enum/const) does not match are the wrong branch; of
    the rest, the one with the fewest errors, reaching deepest into the body, is the intended one.
    """
    while error.context:
        groups: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            groups.setdefault(sub.relative_schema_path[0], []).append(sub)

        def score(errors: list[ValidationError]) -> tuple[bool, int, int]:
            wrong_branch = any(
                e.validator in ("enum", "const") and list(e.absolute_path)[-1:] == ["type"] for e in errors
            )
            return (wrong_branch, len(errors), -max(len(e.absolute_path) for e in errors))

        best = min(groups.values(), key=score)
        error = max(best, key=lambda e: len(e.absolute_path))
    return error


@functools.cache
def _load_spec_cached(path: str) -> OpenAPISpec:
    return OpenAPISpec(Path(path))


def load_spec(path: Path | str | None = None) -> OpenAPISpec | None:
    """Load (once per process) the spec at ``path`` or :func:`default_spec_path`; ``None`` if absent."""
    resolved = Path(path) if path is not None else default_spec_path()
    if not resolved.is_file():
        return None
    return _load_spec_cached(str(resolved.resolve()))
