"""What `/budget gifts` and `/budget priority` say (the group: cogs/budget.py; its inputs: cogs/_budget_input.py)."""

from __future__ import annotations

from bot.billing.money import format_usd
from cogs._render import role


def gifts_text(cap_micros: int) -> str:
    """What `/budget gifts` says about the daily gift cap."""
    if cap_micros <= 0:
        return "Gifts are off: members can't give each other budget (`/budget gifts cap:1.00` turns them on)."
    return (
        f"Gifts are on: a member may give others up to {format_usd(cap_micros)} per day (UTC) of their own"
        " remaining budget with `/gift`."
    )


def priority_text(role_id: int | None, guild_id: int) -> str:
    """What `/budget priority` says about the server's priority lane."""
    if role_id is None:
        return "No priority lane: this server's jobs go by the fair order alone (`/budget priority role:` sets one)."
    return (
        f"Priority lane: jobs of members with {role(role_id, guild_id)} (at the time they ask) go before this"
        " server's other jobs, shown as ⚡ priority in the queue; other servers keep their turns."
    )
