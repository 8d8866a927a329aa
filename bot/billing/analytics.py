"""`/budget export period group_by`: a server's spend summed by member, role, channel, model or day, as CSV.

Money moved by jobs only (every ledger kind but ``grant``, as ``/budget report`` counts it): ``spend_usd``
is the sum of the rows' ``server_micros`` (µ$ exact, printed as dollars with six decimals), ``images``
the sum of ``member_images``, ``jobs`` the jobs reserved (``reserve`` rows). The sums are done by the
database (``GROUP BY``), so a year of ledger is one query and the answer has one row per group.

* ``member``: the ledger's ``user_id``; ``model``: its model; ``day``: the UTC day the row counts in
  (its reservation's, like the limits).
* ``channel``: the channel the job was asked in (``jobs.channel_id``); rows of a job whose row was
  purged have no channel (an empty cell).
* ``role``: each member's spend counts under **every role they have now** (``@everyone`` too), read
  by the caller (``roles_of``: the bot's member cache, else Discord, `cogs/_export.py`); members it
  cannot find (left the server) are summed under an empty ``role_id``. A member with two roles counts
  under both, so role rows may add up to more than the server's spend.

``period``: ``day``, ``week`` or ``month`` (the current one, by the ledger's period keys) or ``all``.
"""

from __future__ import annotations

import csv
import enum
import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bot.billing.periods import Period, day_keys, period_key
from bot.storage.database import Database

ALL = "all"
_COLUMN = {Period.DAY: "day", Period.WEEK: "week", Period.MONTH: "month"}  # fixed names, never input


class GroupBy(enum.StrEnum):
    """What `/budget export group_by` sums by."""

    MEMBER = "member"
    ROLE = "role"
    CHANNEL = "channel"
    MODEL = "model"
    DAY = "day"


_KEY_COLUMN = {  # the CSV's first column
    GroupBy.MEMBER: "user_id",
    GroupBy.ROLE: "role_id",
    GroupBy.CHANNEL: "channel_id",
    GroupBy.MODEL: "model",
    GroupBy.DAY: "day",
}
_GROUP_SQL = {  # the SQL expression grouped by (fixed strings)
    GroupBy.MEMBER: "l.user_id",
    GroupBy.ROLE: "l.user_id",  # then per role, in Python
    GroupBy.CHANNEL: "j.channel_id",
    GroupBy.MODEL: "l.model",
    GroupBy.DAY: "l.day",
}

Totals = tuple[int, int, int]  # micros, images, jobs


def period_filter(period: Period | None, now: datetime) -> tuple[str, tuple[str, ...]]:
    """The ledger rows of the current ``period`` (None: all) as ``AND …`` SQL on alias ``l`` and its params."""
    if period is None:
        return "", ()
    first_day, last_day = day_keys(period, now)  # through the (guild_id, day) index; the key keeps it exact
    return f" AND l.day BETWEEN ? AND ? AND l.{_COLUMN[period]} = ?", (first_day, last_day, period_key(period, now))


async def spend_by(
    db: Database,
    guild_id: int,
    group_by: GroupBy,
    *,
    period: Period | None,
    now: datetime,
    roles_of: Callable[[int], Sequence[int] | None] = lambda _user: None,
) -> list[tuple[Any, Totals]]:
    """The server's spend per group (key, (micros, images, jobs)); days in order, the rest by spend."""
    where, params = period_filter(period, now)
    expression = _GROUP_SQL[group_by]
    join = " LEFT JOIN jobs j ON j.id = l.job_id" if group_by is GroupBy.CHANNEL else ""
    rows = await db.fetch_all(
        f"SELECT {expression} AS grp, CAST(SUM(l.server_micros) AS BIGINT) AS micros,"
        " CAST(SUM(l.member_images) AS BIGINT) AS images,"
        " CAST(SUM(CASE WHEN l.kind = 'reserve' THEN 1 ELSE 0 END) AS BIGINT) AS jobs"
        f" FROM ledger l{join} WHERE l.guild_id = ? AND l.kind != 'grant'{where} GROUP BY {expression}",
        (guild_id, *params),
    )
    sums: dict[Any, Totals] = {row["grp"]: (int(row["micros"]), int(row["images"]), int(row["jobs"])) for row in rows}
    if group_by is GroupBy.ROLE:
        return by_role(_by_spend(sums), roles_of)
    if group_by is GroupBy.DAY:
        return sorted(((str(key).removeprefix("d:"), totals) for key, totals in sums.items()), key=lambda kv: kv[0])
    return _by_spend(sums)


def _by_spend(sums: dict[Any, Totals]) -> list[tuple[Any, Totals]]:
    return sorted(sums.items(), key=lambda kv: (-kv[1][0], -kv[1][1], str(kv[0] if kv[0] is not None else "")))


def by_role(
    by_member: list[tuple[Any, Totals]], roles_of: Callable[[int], Sequence[int] | None]
) -> list[tuple[Any, Totals]]:
    """Each member's sums (:func:`spend_by` ``MEMBER``) added to every role they have (unknown: ``None``)."""
    sums: dict[int | None, list[int]] = defaultdict(lambda: [0, 0, 0])
    for user_id, totals in by_member:
        roles = roles_of(int(user_id))
        for role_id in (None,) if roles is None else roles:
            for n, value in enumerate(totals):
                sums[role_id][n] += value
    return _by_spend({role_id: (micros, images, jobs) for role_id, (micros, images, jobs) in sums.items()})


def spend_csv(group_by: GroupBy, groups: list[tuple[Any, Totals]]) -> bytes:
    """The groups as CSV: the key column, ``spend_usd`` (µ$ exact), ``images``, ``jobs``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow((_KEY_COLUMN[group_by], "spend_usd", "images", "jobs"))
    for key, (micros, images, jobs) in groups:
        writer.writerow(("" if key is None else key, micros_as_usd(micros), images, jobs))
    return out.getvalue().encode("utf-8")


def micros_as_usd(micros: int) -> str:
    """µ$ as exact dollars: ``-1.000250``."""
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), 1_000_000)
    return f"{sign}{whole}.{fraction:06d}"
