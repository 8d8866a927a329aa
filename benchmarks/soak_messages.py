"""Reading what a member was finally shown, from the fake Discord: which message, and what it says about money.

A request's final message is its interaction's ``@original`` once it no longer shows progress, an
ephemeral follow-up (a refusal after a defer), or a message the bot posted in the channel or a DM
(past the interaction's token). A channel/DM message names its request by the job id it carries
(the result card's footer ``Job N``, or a button's custom id); one that carries none (a text such
as ``<@member> The image provider …``) is only known by the member it mentions or is sent to.

What a message claims about the member's money: a result (an image) says they paid; a text says
"still counts against your quota" (paid) or "you have not been charged" / "nothing was charged"
(not paid); any other text says nothing about it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.billing.money import parse_usd
from tests.e2e.fake_discord import FakeDiscord

V2 = 1 << 15
LOADING = 1 << 7
PROGRESS = ("⏳", "📨", "🎨", "📥", "🧠", "📦")
CHARGED = ("still counts against your quota", "not refunded")
NOT_CHARGED = ("not been charged", "nothing was charged", "not charged")
_FAILED_LINE = re.compile(r"(\d+) of (\d+) images? failed(?:: (refunded)\.| \((not refunded)| \((\d+) refunded\))")
_COST = re.compile(r"· (\d+) (?:images|drafts) · (\$[\d,.]+)")


def walk(components: list[Any]) -> list[dict[str, Any]]:
    """Every component of a tree."""
    found = []
    for component in components or []:
        if isinstance(component, dict):
            found.append(component)
            found += walk(component.get("components") or [])
    return found


def text_of(message: dict[str, Any]) -> str:
    """Everything readable in a message: content, embed texts and fields, Components V2 text displays."""
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields") or []]
        parts.append((embed.get("footer") or {}).get("text") or "")
    parts += [c.get("content") or "" for c in walk(message.get("components") or []) if c.get("type") == 10]
    return "\n".join(p for p in parts if p)


def gallery_items(message: dict[str, Any]) -> int | None:
    """How many images a Components V2 gallery shows (None: not a gallery)."""
    galleries = [c for c in walk(message.get("components") or []) if c.get("type") == 12]
    return sum(len(g.get("items") or []) for g in galleries) if galleries else None


def shows_image(message: dict[str, Any]) -> bool:
    """A result: an image with its card, or a gallery."""
    return bool(message.get("attachments")) and (bool(message.get("embeds")) or gallery_items(message) is not None)


def is_final(message: dict[str, Any] | None) -> bool:
    """Whether a request's message is an end state (not loading, queued, running, or "the rest will follow")."""
    if not message or message["flags"] & LOADING:
        return False
    text = (message.get("content") or "").lstrip()
    if shows_image(message):
        return True
    return bool(text) and not text.startswith(PROGRESS) and "will be posted here" not in text


@dataclass(frozen=True)
class Claim:
    """What a final message tells the member."""

    kind: str  # "image", "gallery" or "text"
    charged: bool | None  # None: it does not say
    images: int = 0  # gallery: images shown
    failed: int | None = None  # gallery or group text: "k of n images failed"
    refunded: int | None = None
    cost_micros: int | None = None  # a single result's card, a gallery's total
    text: str = ""


def claim_of(message: dict[str, Any]) -> Claim:
    """Read a final message's claim about the member's money (see the module docstring)."""
    text = text_of(message)
    lower = text.lower()
    failed = refunded = None
    match = _FAILED_LINE.search(text)
    if match:
        failed = int(match[1])
        refunded = failed if match[3] else 0 if match[4] else int(match[5])
    items = gallery_items(message)
    if items is not None and message.get("attachments"):
        cost = _COST.search(text)
        micros = parse_usd(cost[2]) if cost else None
        return Claim("gallery", True, images=items, failed=failed, refunded=refunded, cost_micros=micros, text=text)
    if shows_image(message):
        cost = re.search(r"Cost: (\$[\d,.]+)", text)
        return Claim("image", True, images=1, cost_micros=parse_usd(cost[1]) if cost else None, text=text)
    if failed is not None:  # a group whose images all failed: "❌ No image could be made. 2 of 2 …"
        return Claim("text", refunded < failed, failed=failed, refunded=refunded, text=text)
    if any(phrase in lower for phrase in CHARGED):
        return Claim("text", True, text=text)
    if any(phrase in lower for phrase in NOT_CHARGED):
        return Claim("text", False, text=text)
    return Claim("text", None, text=text)


def posted_outside(fake: FakeDiscord) -> list[dict[str, Any]]:
    """Messages the bot posted in a channel or a DM, not through an interaction (past the token)."""
    return [
        m
        for m in fake.messages.values()
        if "interaction_metadata" not in m and int(m["author"]["id"]) == fake.application_id
    ]


def job_ids_in(message: dict[str, Any]) -> set[int]:
    """The job ids a message names: the result card's ``Job N`` footer, the buttons' custom ids."""
    found = {int(n) for n in re.findall(r"Job (\d+)", text_of(message))}
    for component in walk(message.get("components") or []):
        match = re.match(r"fluxcord:[a-z]+:(\d+)", component.get("custom_id") or "")
        if match:
            found.add(int(match[1]))
    return found


def addressee(fake: FakeDiscord, message: dict[str, Any]) -> int | None:
    """The member a channel message mentions, or the one a DM is sent to."""
    channel = fake.channels.get(int(message["channel_id"])) or {}
    if channel.get("type") == 1:
        return int(channel["recipients"][0]["id"])
    mention = re.search(r"<@!?(\d+)>", text_of(message))
    return int(mention[1]) if mention else None


def images_replaced_by_text(fake: FakeDiscord) -> list[str]:
    """Messages that showed an image and later showed none (the image replaced by a text)."""
    found = []
    for mid, versions in fake.message_history.items():
        first = next((i for i, v in enumerate(versions) if v.attachments), None)
        later = next((v for v in versions[first or 0 :] if not v.attachments), None) if first is not None else None
        if later is not None:
            found.append(f"message {mid}: an image, then {later.text[:90]!r}")
    return found
