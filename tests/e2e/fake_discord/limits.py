"""Discord's message limits (content, embeds, components, attachments) as 50035 error trees."""

from __future__ import annotations

from typing import Any

from tests.e2e.fake_discord.constants import _SELECT_TYPES, MAX_FILES, MessageFlags
from tests.e2e.fake_discord.helpers import _walk_components
from tests.e2e.fake_discord.records import RecordedCall

# --------------------------------------------------------------------------------------------------
# message rules and response shaping


def _attachments_prefix(call: RecordedCall) -> tuple[str, ...]:
    return ("data", "attachments") if call.operation == "create_interaction_response" else ("attachments",)


def _message_limit_errors(body: dict[str, Any], prefix: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str, str]]:
    """Discord's message limits that the bot can break (content, embeds, components, attachments)."""
    problems: list[tuple[tuple[Any, ...], str, str]] = []

    def add(path: tuple[Any, ...], code: str, message: str) -> None:
        problems.append(((*prefix, *path), code, message))

    content = body.get("content")
    if isinstance(content, str) and len(content) > 2000:
        add(("content",), "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    embeds = body.get("embeds") or []
    if isinstance(embeds, list):
        if len(embeds) > 10:
            add(("embeds",), "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        total = 0
        for i, embed in enumerate(embeds):
            if not isinstance(embed, dict):
                continue
            for key, limit in (("title", 256), ("description", 4096)):
                text = embed.get(key) or ""
                total += len(text)
                if len(text) > limit:
                    add(("embeds", i, key), "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
            fields = embed.get("fields") or []
            if len(fields) > 25:
                add(("embeds", i, "fields"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            for j, fld in enumerate(fields):
                for key, limit in (("name", 256), ("value", 1024)):
                    text = (fld or {}).get(key) or ""
                    total += len(text)
                    if len(text) > limit:
                        where = ("embeds", i, "fields", j, key)
                        add(where, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
            for key, sub, limit in (("footer", "text", 2048), ("author", "name", 256)):
                text = (embed.get(key) or {}).get(sub) or ""
                total += len(text)
                if len(text) > limit:
                    add(("embeds", i, key, sub), "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
        if total > 6000:
            add(("embeds",), "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of 6000 ({total})")
    attachments = body.get("attachments")
    if isinstance(attachments, list) and len(attachments) > MAX_FILES:
        add(("attachments",), "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    flags = body.get("flags") or 0
    components = body.get("components") or []
    if isinstance(flags, int) and flags & MessageFlags.IS_COMPONENTS_V2:
        if body.get("content") or body.get("embeds"):
            add(
                ("content",),
                "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                "content and embeds cannot be used with IS_COMPONENTS_V2",
            )
        if len(list(_walk_components(components))) > 40:
            add(("components",), "BASE_TYPE_MAX_LENGTH", "Must be 40 or fewer components in total.")
    elif isinstance(components, list):
        if len(components) > 5:
            add(("components",), "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        for i, row in enumerate(components):
            if not isinstance(row, dict) or row.get("type") != 1:
                add(("components", i, "type"), "COMPONENT_LAYOUT_INVALID", "Top-level components must be action rows.")
                continue
            children = row.get("components") or []
            selects = [c for c in children if isinstance(c, dict) and c.get("type") in _SELECT_TYPES]
            if len(children) > 5 or (selects and len(children) > 1) or not children:
                add(
                    ("components", i, "components"),
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "An action row holds 1-5 buttons or exactly one select menu.",
                )
    seen: set[str] = set()
    for comp in _walk_components(components if isinstance(components, list) else []):
        cid = comp.get("custom_id")
        if cid is None:
            continue
        if not isinstance(cid, str) or not 1 <= len(cid) <= 100:
            add(("components",), "BASE_TYPE_BAD_LENGTH", f"custom_id {cid!r} must be 1-100 characters.")
        elif cid in seen:
            add(("components",), "COMPONENT_CUSTOM_ID_DUPLICATED", f"custom_id {cid!r} is duplicated.")
        seen.add(cid if isinstance(cid, str) else "")
    return problems
