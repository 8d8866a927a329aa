"""The fake BFL servers: :class:`FakeBfl` (state, lifecycle, scripting, observing) and the delivery host."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any, Self

from aiohttp import web

from tests.fakes.fake_bfl.behaviour import (
    Behaviour,
    Charge,
    DownloadRecord,
    FakeTask,
    PollRecord,
    SchemaViolation,
    SubmitRecord,
)
from tests.fakes.fake_bfl.constants import DEFAULT_API_KEY, KNOWN_FINETUNES, MOVED_POLLING_PATH
from tests.fakes.fake_bfl.results import ResultsMixin
from tests.fakes.fake_bfl.submit import SubmitMixin
from tests.fakes.fake_bfl.validation import generation_routes

# -- the servers -------------------------------------------------------------------------------------


class FakeDeliveryHost:
    """A second loopback server standing in for "another host" (a CDN, or an attacker).

    It serves ``/delivery/<task>.<ext>`` and ``/v1/get_result`` for :class:`FakeBfl` redirects (polls
    are answered without asking for the key) and records every request (with headers, secret values
    masked) in ``requests``, so tests can prove ``x-key`` never reached it.
    """

    def __init__(self, owner: FakeBfl) -> None:
        self._owner = owner
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.requests: list[DownloadRecord] = []

    async def start(self) -> None:
        """Bind to 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = DownloadRecord.of(request, "other", self._owner.now())
        self.requests.append(record)
        if request.method == "GET" and request.path == "/v1/get_result":  # a poll redirected here
            response = self._owner.answer_poll_request(request, "other")
            record.status = response.status
        elif request.method == "GET" and request.path.startswith("/delivery/"):
            self._owner.downloads.append(record)
            response = await self._owner.serve_delivery(request, record)
        else:
            response = web.json_response({"detail": "Not Found"}, status=404)
            record.status = 404
        self._owner.changed()
        return response


class FakeBfl(SubmitMixin, ResultsMixin):
    """The fake BFL API. Use ``async with FakeBfl() as bfl:`` or ``await start()`` / ``await close()``.

    Attributes tests read: ``url``, ``api_key``, ``credits``, ``charges`` (what was billed, per task),
    ``submits``, ``polls``, ``downloads``, ``unhandled``, ``schema_errors``, ``tasks``,
    ``active_tasks``, ``max_active_seen``, ``max_active_seen_by_model``, ``delivery_host``.
    Attributes tests set: ``default`` (the :class:`Behaviour` when the script queue is empty),
    ``behaviour_source`` (a callable ``(model, body) -> Behaviour`` consulted instead of ``default``,
    e.g. :class:`tests.fakes.fake_bfl.faults.RandomBflFaults`), ``max_active``,
    ``max_active_kontext_max``. ``random`` (seeded by ``seed``) draws each time-based task's ``run_jitter``.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        credits: Decimal | int | str = Decimal(1000),
        max_active: int = 24,
        max_active_kontext_max: int = 6,
        seed: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.random = random.Random(seed)
        self.credits = Decimal(credits)
        self.max_active = max_active
        self.max_active_kontext_max = max_active_kontext_max
        #: The LoRAs (``finetune_id``) on the account: a LoRA route answers any other as BFL would (404).
        self.finetunes: set[str] = set(KNOWN_FINETUNES)
        self.default = Behaviour()
        self.behaviour_source: Callable[[str, Any], Behaviour] | None = None
        #: Every task the fake created, with what it billed for it (the account BFL keeps).
        self.charges: list[Charge] = []
        self.submits: list[SubmitRecord] = []
        self.polls: list[PollRecord] = []
        self.downloads: list[DownloadRecord] = []
        self.unhandled: list[tuple[str, str]] = []
        self.schema_errors: list[SchemaViolation] = []
        self.tasks: dict[str, FakeTask] = {}
        self.max_active_seen = 0
        self.max_active_seen_by_model: dict[str, int] = {}
        self.delivery_host = FakeDeliveryHost(self)
        self._script: deque[Behaviour] = deque()
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._url = ""

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT`` (no trailing slash)."""
        if not self._url:
            raise RuntimeError("FakeBfl is not started")
        return self._url

    async def start(self) -> None:
        """Bind both servers to 127.0.0.1 on free ports. Also compiles the spec (cached)."""
        generation_routes()
        await self.delivery_host.start()
        app = web.Application()
        for model in generation_routes():
            app.router.add_post(f"/v1/{model}", self._submit)
        app.router.add_get("/v1/get_result", self._poll)
        app.router.add_get("/regional/v1/get_result", self._poll)
        app.router.add_get(MOVED_POLLING_PATH, self._poll)
        app.router.add_get("/v1/credits", self._credits)
        app.router.add_get("/delivery/{name}", self._delivery)
        app.router.add_get("/redirect/{name}", self._redirect)
        app.router.add_route("*", "/{tail:.*}", self._unhandled)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        """Release hung requests and stop both servers."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.delivery_host.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- scripting ---------------------------------------------------------------------------------

    def script(self, *behaviours: Behaviour, times: int = 1) -> None:
        """Queue behaviours for the next submits (each repeated ``times``); then ``default`` applies.

        A behaviour is consumed by every submit that passes auth and schema validation, including
        ones answered with a scripted error.
        """
        for behaviour in behaviours:
            self._script.extend([behaviour] * times)

    def next_behaviour(self, model: str, body: Any) -> Behaviour:
        """The behaviour of the next valid submit: the script first, then ``behaviour_source``, then ``default``."""
        if self._script:
            return self._script.popleft()
        if self.behaviour_source is not None:
            return self.behaviour_source(model, body)
        return self.default

    def fail_submits(self, status: int, *, times: int = 1, retry_after: str | None = None, body: Any = None) -> None:
        """Answer the next ``times`` submits with HTTP ``status``."""
        self.script(Behaviour(submit_status=status, retry_after=retry_after, submit_body=body), times=times)

    def expire_delivery(self, task_id: str) -> None:
        """Make a task's signed URL expired from now on (downloads get 403)."""
        task = self.tasks[task_id]
        task.behaviour = replace(task.behaviour, delivery_ttl=0)
        task.ready_at = task.ready_at if task.ready_at is not None else self.now()

    # -- observing ---------------------------------------------------------------------------------

    @property
    def active_tasks(self) -> int:
        """Tasks accepted and not yet finished (see the module docstring for the rule)."""
        now = self.now()
        return sum(1 for task in self.tasks.values() if task.is_active(now))

    def active_for(self, model: str) -> int:
        """Active tasks of one model."""
        now = self.now()
        return sum(1 for task in self.tasks.values() if task.model == model and task.is_active(now))

    def now(self) -> float:
        """The event loop's clock (the times in records)."""
        return asyncio.get_running_loop().time()

    def changed(self) -> None:
        """Wake everything waiting in :meth:`wait_for` (called on every state change)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true, re-checking on every state change of the fake."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"FakeBfl: condition not met within {timeout}s") from None

    def billed_micros(self, task_id: str | None = None) -> int:
        """What the fake billed, in micro-dollars: for one task, or in all (exact, from :attr:`charges`)."""
        return sum(c.micros for c in self.charges if task_id is None or c.task_id == task_id)

    def submit_statuses(self) -> list[int | None]:
        """The HTTP status answered to each submit, in order."""
        return [record.status for record in self.submits]
