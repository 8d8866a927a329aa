"""Reading a posted `/imagine count:N` group: its Components V2 gallery message and its member jobs."""

from __future__ import annotations

from typing import Any

V2 = 1 << 15


def walk(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for comp in components or []:
        found.append(comp)
        found += walk(comp.get("components") or [])
    return found


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for c in walk(message["components"]) if c.get("custom_id")]


def labels(message: dict[str, Any]) -> list[str]:
    return [c["label"] for c in walk(message["components"]) if c.get("type") == 2]


def gallery_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    [gallery] = [c for c in walk(message["components"]) if c.get("type") == 12]
    return gallery["items"]


def text_display(message: dict[str, Any]) -> str:
    return "\n".join(c["content"] for c in walk(message["components"]) if c.get("type") == 10)


def gallery_posts(fake: Any, interaction: Any) -> list[Any]:
    """The requests that put a Components V2 message in place (the group posted)."""
    return [c for c in fake.calls if c.token == interaction.token and c.json and (c.json.get("flags") or 0) & V2]


async def posted(harness: Any, interaction: Any, timeout: float = 20.0) -> list[Any]:
    """Wait until the group of ``interaction`` is posted and none of its images is open; its members."""
    return await harness.group_settled(int(interaction.id), timeout)
