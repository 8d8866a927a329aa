"""Small helpers of the fake Discord: snowflake parsing, error trees, component walking, shaping."""

from __future__ import annotations

import copy
import inspect
import io
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from tests.e2e.fake_discord.constants import _SELECT_TYPES


def _accepts_argument(predicate: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(predicate).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in positional or p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)


def _errors_tree(items: Iterable[tuple[tuple[Any, ...], str, str]]) -> dict[str, Any]:
    """Build Discord's nested ``errors`` object: ``{"content": {"_errors": [{"code", "message"}]}}``."""
    tree: dict[str, Any] = {}
    for path, code, message in items:
        node = tree
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})
    return tree


def _snowflake_of(value: Any, what: str) -> int:
    """Accept an int, a digit string, a Discord dict (``{"id"}`` or a member ``{"user": {"id"}}``) or ``.id``."""
    if isinstance(value, bool):
        raise TypeError(f"{what}: a bool is not an id")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, dict):
        if "user" in value and isinstance(value["user"], dict):
            return int(value["user"]["id"])
        if "id" in value:
            return int(value["id"])
    if hasattr(value, "id"):
        return int(value.id)
    raise TypeError(f"{what}: cannot get an id from {value!r}")


def _walk_components(components: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for comp in components or ():
        if not isinstance(comp, dict):
            continue
        yield comp
        yield from _walk_components(comp.get("components") or ())
        for key in ("component", "accessory"):
            if isinstance(comp.get(key), dict):
                yield from _walk_components([comp[key]])


def _image_info(data: bytes) -> tuple[str | None, int | None, int | None]:
    """Sniff (content_type, width, height) of an upload, as Discord does, using Pillow if present."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a project dependency
        return None, None, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                mime = Image.MIME.get(img.format or "")
                return mime, img.width, img.height
    except Exception:
        return None, None, None


def _assign_component_ids(components: list[Any]) -> None:
    """Give every component a numeric ``id`` (Discord does) and fill select defaults."""
    comps = list(_walk_components(components))
    next_id = max([c["id"] for c in comps if isinstance(c.get("id"), int)] + [0]) + 1
    for comp in comps:
        if not isinstance(comp.get("id"), int):
            comp["id"] = next_id
            next_id += 1
        if comp.get("type") in _SELECT_TYPES:
            comp.setdefault("min_values", 1)
            comp.setdefault("max_values", 1)
            if comp["type"] == 3:
                comp.setdefault("options", [])


def _embed_response(embed: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(embed)
    out.setdefault("type", "rich")
    for fld in out.get("fields") or []:
        fld.setdefault("inline", False)
    return out
