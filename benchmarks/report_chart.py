"""Render the `/budget report` chart of a seeded test server to a PNG file, to look at it as a moderator would.

Run: python -m benchmarks.report_chart --out /tmp/report.png [--by model|channel|role] [--period month|week|day]

A fresh SQLite database gets a month of a made-up server's history, written through the bot's own
code (job rows by :func:`bot.engine.jobs.insert_job`, reservations and settlements by the
:class:`~bot.billing.ledger.Ledger`): 14 members in 3 roles, 4 channels, 3 models, busier on
weekends, the 1st to the 20th of November 2026, with a server budget of $1.25 a day. The chart is then
built from :func:`~bot.billing.spend_days.daily_spend` and :func:`~bot.billing.reports.spend_report`
as the cog builds it (the names, which Discord would give, come from the seed) and drawn by
:func:`bot.billing.charts.render_spend_chart`. The alt text is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.billing.caps import Limit, Metric, ReserveTerms, Scope, Source
from bot.billing.charts import SpendChart, render_spend_chart, spend_alt_text
from bot.billing.ledger import Ledger
from bot.billing.periods import Period
from bot.billing.reports import spend_report
from bot.billing.spend_days import Grouping, budget_line, daily_spend, top_role
from bot.engine.jobs import NewJob, insert_job
from bot.storage.database import Database

GUILD = 1000
NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
MODELS = {"flux-2-pro": 45_000, "flux-2-klein-4b": 14_000, "flux-kontext-max": 80_000}
CHANNELS = {11: "art", 12: "memes", 13: "general", 14: "commissions"}
ROLES = {21: ("Artists", 3), 22: ("Supporters", 2), 23: ("Regulars", 1)}  # id: (name, position)
NAMES = ["Mira", "Jonas", "Aiko", "Bea", "Tomás", "Ravi", "Lena", "Omar", "Sun", "Kit", "Noor", "Ivo", "Pia", "Zed"]
SERVER_BUDGET = Limit(Scope.SERVER, Metric.USD, Period.DAY, 1_250_000, Source.MODERATORS)


async def seed(db: Database) -> None:
    """A month (so far) of one server's images, the same on every run."""
    rng = random.Random(24)
    members = [(100 + n, rng.choice([[21], [22], [21, 23], [23], []])) for n in range(len(NAMES))]
    weights = [1.0 / (n + 1) ** 0.8 for n in range(len(members))]  # a few members make most images
    moment = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    ledger = Ledger(db, lambda: moment)
    terms = ReserveTerms([], max_pending_jobs=1_000)
    job_id = 0
    for day in range(NOW.day):
        moment = datetime(2026, 11, day + 1, 9, 0, tzinfo=UTC)
        busy = 1.8 if moment.weekday() >= 5 else 1.0
        for _ in range(int(rng.randint(10, 40) * busy)):
            job_id += 1
            moment += timedelta(minutes=rng.randint(1, 20))
            user, roles = rng.choices(members, weights)[0]
            model = rng.choices(list(MODELS), [5, 8, 1])[0]
            channel = rng.choices(list(CHANNELS), [4, 3, 2, 1])[0]
            await _job(db, job_id, user, channel, model, roles, moment)
            await ledger.reserve(
                job_id=job_id, guild_id=GUILD, user_id=user, model=model, estimated_micros=MODELS[model], terms=terms
            )
            await ledger.settle(job_id, MODELS[model])


async def _job(db: Database, job_id: int, user: int, channel: int, model: str, roles: list[int], at: datetime) -> None:
    job = NewJob(
        id=job_id,
        guild_id=GUILD,
        channel_id=channel,
        user_id=user,
        model=model,
        prompt="a seeded prompt",
        params={"prompt": "a seeded prompt"},
        seed=job_id,
        width=1024,
        height=1024,
        cache_key=f"seed-{job_id}",
        aspect_ratio=None,
        estimated_micros=MODELS[model],
        role_ids=" ".join(map(str, roles)),
    )
    async with db.transaction() as tx:
        await insert_job(tx, job, now=at, cached=False, acked=True, holder=None, group=None)


def _name(by: Grouping, group: str | int | None) -> str:
    if by is Grouping.MODEL:
        return str(group)
    if by is Grouping.CHANNEL:
        return f"#{CHANNELS[int(group)]}" if group is not None else "no channel"
    role = top_role(None if group is None else str(group), {r: pos for r, (_, pos) in ROLES.items()})
    return f"@{ROLES[role][0]}" if role is not None else "@everyone"


async def render(out: Path, by: Grouping, period: Period) -> str:
    """Seed a server, draw its report chart to ``out``; return the alt text."""
    with tempfile.TemporaryDirectory() as folder:
        db = await Database.open(Path(folder) / "seeded.sqlite3")
        try:
            await seed(db)
            spend = await daily_spend(db, GUILD, period, NOW, by)
            report = await spend_report(db, GUILD, period, NOW)
        finally:
            await db.close()
    labels = {Period.MONTH: lambda d: str(d.day), Period.WEEK: lambda d: f"{d:%a} {d.day}"}
    label = labels.get(period, lambda d: f"{d:%Y-%m-%d}")
    chart = SpendChart(
        title=f"Spend this {period.value} ({report.period_key[2:]})",
        group_word=by.value,
        days=tuple(label(day) for day in spend.days),
        series=tuple(spend.series(lambda group: _name(by, group))),
        budget=budget_line([SERVER_BUDGET], NOW),
        top=tuple((NAMES[user - 100], micros) for user, micros, _ in report.by_member),
    )
    png = await asyncio.to_thread(render_spend_chart, chart)
    await asyncio.to_thread(out.write_bytes, png)
    return spend_alt_text(chart)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("report.png"))
    parser.add_argument("--by", choices=[g.value for g in Grouping], default="model")
    parser.add_argument("--period", choices=[p.value for p in Period], default="month")
    args = parser.parse_args()
    alt = asyncio.run(render(args.out, Grouping(args.by), Period(args.period)))
    print(f"{args.out}\n{alt}")


if __name__ == "__main__":
    main()
