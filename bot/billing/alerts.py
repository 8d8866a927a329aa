"""Alerts at 50 %, 80 % and 100 % of a server's budget, each sent once per period."""

from __future__ import annotations

import logging

from bot.billing.ledger import Ledger, Scope
from bot.billing.limits import LimitsService
from bot.billing.money import format_usd
from bot.billing.periods import period_key
from bot.clock import Clock, to_millis, utc_now
from bot.modlog import ModLog
from bot.storage.database import Database

log = logging.getLogger(__name__)

THRESHOLDS = (50, 80, 100)


class SpendAlerts:
    """Checks a server's spend against its budgets after each reservation."""

    def __init__(
        self, db: Database, ledger: Ledger, limits: LimitsService, modlog: ModLog, clock: Clock = utc_now
    ) -> None:
        self._db = db
        self._ledger = ledger
        self._limits = limits
        self._modlog = modlog
        self._clock = clock

    async def check(self, guild_id: int) -> list[int]:
        """Send any threshold newly crossed; return the thresholds announced."""
        limits = [limit for limit in await self._limits.limits_for(guild_id, 0, ()) if limit.scope is Scope.SERVER]
        crossed = []
        now = self._clock()
        for status in await self._ledger.statuses(guild_id, 0, limits):
            if status.limit.value <= 0:
                continue
            percent = status.used * 100 // status.limit.value
            for threshold in THRESHOLDS:
                if percent < threshold:
                    break
                key = period_key(status.limit.period, now)
                inserted = await self._db.execute(
                    "INSERT INTO spend_alerts (guild_id, period, threshold, at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (guild_id, key, threshold, to_millis(now)),
                )
                if inserted:
                    crossed.append(threshold)
                    text = (
                        f"⚠️ This server has used {threshold}% of its {status.limit.period.value} image budget: "
                        f"{format_usd(status.used)} of {format_usd(status.limit.value)}."
                    )
                    log.info("Guild %s crossed %d%% of its %s budget", guild_id, threshold, key)
                    await self._modlog.announce(guild_id, text)
        return crossed
