"""The buttons and the modal of Ask for more (the handler is :class:`cogs.asks.Asks`).

**Ask for more** (``fluxcord:ask``) sits under a member's budget refusal (:func:`refusal_view`, added by
the one error path, ``bot/tree.py``); it opens :class:`AskModal` (amount, optional reason). The
request is posted in the mod-log with **Approve** / **Deny** (``fluxcord:approve:<id>`` /
``fluxcord:deny:<id>``: the custom id holds only the request's random id), persistent buttons that
work after a restart and on any process.
"""

from __future__ import annotations

from typing import Any

import discord

from bot.billing.caps import Metric, Scope
from bot.billing.refusals import OverLimit
from bot.errors import FluxcordError
from cogs._components import Modal, PersistentButton, a_key, action_template

ASK_ACTIONS = ("ask", "approve", "deny")


def refusal_view(error: FluxcordError) -> discord.ui.View | None:
    """**Ask for more** under a refusal of the member's own budget (a grant can lift it); else None."""
    notice = error.notice
    if not isinstance(notice, OverLimit):
        return None
    limit = notice.status.limit
    if (limit.scope, limit.metric) != (Scope.MEMBER, Metric.USD):
        return None  # a grant adds dollars: it lifts neither an image quota nor the server's budget
    view = discord.ui.View(timeout=None)
    view.add_item(AskButton("ask"))
    return view


class AskButton(PersistentButton, template=action_template(("ask",))):
    """**Ask for more**: opens the modal for the member who clicks it."""

    def __init__(self, action: str = "ask") -> None:
        super().__init__(
            discord.ui.Button(label="Ask for more", style=discord.ButtonStyle.secondary, custom_id=f"fluxcord:{action}")
        )

    async def run(self, interaction: discord.Interaction) -> None:
        """Open the modal (``target.open_modal``)."""
        await self.target.open_modal(interaction)


class DecideButton(PersistentButton, template=action_template(("approve", "deny"))):
    """**Approve** / **Deny** under a request in the mod-log; its custom id holds only the request's id."""

    ARGUMENTS = (a_key(16),)

    def __init__(self, action: str, ask_id: str) -> None:
        approve = action == "approve"
        super().__init__(
            discord.ui.Button(
                label="Approve" if approve else "Deny",
                style=discord.ButtonStyle.success if approve else discord.ButtonStyle.danger,
                custom_id=f"fluxcord:{action}:{ask_id}",
            )
        )
        self.approve = approve
        self.ask_id = ask_id

    async def run(self, interaction: discord.Interaction) -> None:
        """Decide the request (``target.decide``)."""
        await self.target.decide(interaction, self.ask_id, approve=self.approve)


def decide_view(ask_id: str) -> discord.ui.View:
    """The mod-log request's buttons."""
    view = discord.ui.View(timeout=None)
    view.add_item(DecideButton("approve", ask_id))
    view.add_item(DecideButton("deny", ask_id))
    return view


class AskModal(Modal, title="Ask for more"):
    """How much, and why (optional); submitted to ``handler.submit``."""

    amount: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Amount in dollars", placeholder="e.g. 2.50", max_length=20
    )
    reason: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Reason (optional)", style=discord.TextStyle.paragraph, required=False, max_length=300
    )

    def __init__(self, handler: Any) -> None:
        super().__init__(timeout=900)
        self.handler = handler

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Ask the moderators."""
        await self.handler.submit(interaction, self.amount.value, self.reason.value)
