"""The bot's Prometheus metrics: one registry per bot, fed by the engine and read at scrape time.

Counters and the latency histogram move as things happen (:class:`Metrics` is the engine's
:class:`~bot.engine.observer.JobObserver`); queue depth, BFL tasks in flight and the bot-wide spend
of the current period are read from the database when Prometheus scrapes (:meth:`Metrics.refresh`),
so they are right even for jobs another run left behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.aio import cancel_and_wait
from bot.billing.bookkeeping import BooksCheck
from bot.billing.ledger import Ledger, Limit, Metric, Scope
from bot.config import Settings
from bot.engine.states import JobStatus
from bot.engine.store import JobStore

log = logging.getLogger(__name__)

# BFL takes seconds to minutes: buckets from 1 s to the 13-minute polling ceiling.
LATENCY_BUCKETS = (1.0, 2.5, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 780.0)
LAG_INTERVAL_SECONDS = 0.5


class Metrics:
    """Every metric the bot exports, in its own registry (several bots in one test process never clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.started = time.monotonic()
        counter, gauge = self._counter, self._gauge
        self.jobs = counter(
            "fluxcord_jobs", "Jobs that reached a terminal state, by model and outcome.", "model", "outcome"
        )
        self.refusals = counter("fluxcord_refusals", "Requests refused before any BFL call, by reason.", "reason")
        self.breaker_refusals = counter(
            "fluxcord_breaker_refusals",
            "Requests refused at once because the model's circuit breaker was open, by model.",
            "model",
        )
        self.spend = counter(
            "fluxcord_spend_micros", "Micro-dollars settled against the BFL account, by model.", "model"
        )
        self.latency = Histogram(
            "fluxcord_bfl_latency_seconds",
            "Seconds from BFL accepting a task to its terminal status, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.discord_errors = counter(
            "fluxcord_discord_api_errors",
            "Discord responses with an error status (each attempt), by HTTP status.",
            "status",
        )
        self.queue_depth = gauge("fluxcord_queue_depth", "Jobs waiting for a BFL slot.")
        self.in_flight = gauge("fluxcord_bfl_tasks_in_flight", "Jobs holding a BFL slot (submitting or generating).")
        self.loop_lag = gauge(
            "fluxcord_event_loop_lag_seconds", "How late the event loop ran a 0.5 s timer, last tick."
        )
        self.bot_spent = gauge(
            "fluxcord_bot_budget_spent_micros", "Bot-wide spend in the current BOT_BUDGET_PERIOD (ledger)."
        )
        self.bot_budget = gauge("fluxcord_bot_budget_micros", "The bot-wide budget (BOT_BUDGET_USD).")
        self.uptime = gauge("fluxcord_uptime_seconds", "Seconds since the bot process built its services.")
        self.counter_drift = gauge(
            "fluxcord_ledger_counter_drift",
            "Spend counters that disagreed with the ledger at the last check (0: the books close).",
        )
        self.counter_checks = counter(
            "fluxcord_ledger_counter_checks",
            "Checks of the spend counters against the ledger (at start, then daily), by result.",
            "result",
        )
        self.breaker_open = gauge(
            "fluxcord_model_breaker_open",
            "1 while a model's circuit breaker refuses new requests (BFL kept failing for it).",
            "model",
        )

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def _gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    # -- the engine's observer ---------------------------------------------------------------------

    def job_ended(self, model: str, outcome: str) -> None:
        """Count a finished job."""
        self.jobs.labels(model=model, outcome=outcome).inc()

    def bfl_latency(self, model: str, seconds: float) -> None:
        """Record one BFL latency sample."""
        self.latency.labels(model=model).observe(seconds)

    def spent(self, model: str, micros: int) -> None:
        """Add a settlement."""
        if micros > 0:
            self.spend.labels(model=model).inc(micros)

    def refused(self, reason: str) -> None:
        """Count a refusal."""
        self.refusals.labels(reason=reason).inc()

    def breaker_refused(self, model: str) -> None:
        """Count a refusal by a model's circuit breaker."""
        self.breaker_refusals.labels(model=model).inc()

    def job_changed(self, job_id: int, change: str) -> None:
        """Not a metric: a job's row changed (for tests waiting on the engine)."""

    def discord_error(self, status: int) -> None:
        """Count a response from Discord with an error status."""
        self.discord_errors.labels(status=str(status)).inc()

    def books_checked(self, check: BooksCheck) -> None:
        """Record a check of the counters against the ledger (:class:`~bot.billing.bookkeeping.Bookkeeping`)."""
        if check.error is not None:
            self.counter_checks.labels(result="error").inc()
            return  # the last known drift stands
        self.counter_drift.set(check.drift)
        self.counter_checks.labels(result="drift" if check.drift else "clean").inc()

    # -- scrape time -------------------------------------------------------------------------------

    @property
    def uptime_seconds(self) -> float:
        """Seconds since these metrics were created (the bot's start)."""
        return time.monotonic() - self.started

    async def refresh(
        self, jobs: JobStore, ledger: Ledger, settings: Settings, troubled_models: Iterable[str] = ()
    ) -> None:
        """Read the gauges that live in the database (and the models whose breaker is open)."""
        self.breaker_open.clear()
        for model in troubled_models:
            self.breaker_open.labels(model=model).set(1)
        self.queue_depth.set(await jobs.count(JobStatus.QUEUED))
        self.in_flight.set(await jobs.count(JobStatus.SUBMITTING, JobStatus.GENERATING))
        budget = Limit(Scope.BOT, Metric.USD, settings.bot_budget_period, settings.bot_budget_micros, "")
        (status,) = await ledger.statuses(0, 0, [budget])
        self.bot_spent.set(status.used)
        self.bot_budget.set(settings.bot_budget_micros)
        self.uptime.set(self.uptime_seconds)

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    # -- instruments -------------------------------------------------------------------------------

    async def watch_loop_lag(self, interval: float = LAG_INTERVAL_SECONDS) -> None:
        """Forever: sleep ``interval`` and record how much later than asked the loop woke us."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + interval
            await asyncio.sleep(interval)
            self.loop_lag.set(max(0.0, loop.time() - asked))

    def discord_trace(self) -> aiohttp.TraceConfig:
        """The Discord client's ``http_trace``: counts every response from Discord with an error status.

        discord.py sends both ways to Discord through that one session: its REST client and the
        interaction webhooks (responses, follow-ups, edits). Each failed attempt counts, also one that
        discord.py then retries (a 429, a 502).
        """
        trace = aiohttp.TraceConfig()

        async def ended(_session: object, _context: object, params: aiohttp.TraceRequestEndParams) -> None:
            if params.response.status >= 400:
                self.discord_error(params.response.status)

        trace.on_request_end.append(ended)
        return trace


async def cancel_quietly(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait for it."""
    if task is None:
        return
    await cancel_and_wait(task)
