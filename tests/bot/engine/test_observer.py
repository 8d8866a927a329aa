"""The engine's observer hears every change of a job's row (the hook the end-to-end tests wait on)."""

from __future__ import annotations

from bot.engine.observer import NullObserver
from tests.bot.engine.conftest import request, who
from tests.fakes.fake_bfl import Behaviour


class Recording(NullObserver):
    """Every ``job_changed`` report, in order."""

    def __init__(self) -> None:
        self.changes: list[tuple[int, str]] = []

    def job_changed(self, job_id: int, change: str) -> None:
        """Record it."""
        self.changes.append((job_id, change))

    def of(self, job_id: int) -> list[str]:
        """The reports about ``job_id``."""
        return [change for i, change in self.changes if i == job_id]


async def test_every_change_of_a_job_is_reported_in_order(make_engine):
    observer = Recording()
    h = await make_engine(engine_options={"observer": observer})
    await h.engine.admit(request(), who(1), acked=False)
    await h.engine.acknowledged(1)
    await h.ended(1)
    assert observer.of(1) == [
        "admitted",
        "acknowledged",
        "submitting",
        "generating",
        "downloading",
        "delivering",
        "delivered",
    ]


async def test_a_job_that_ends_without_its_image_reports_that_the_member_was_told(make_engine, fake_bfl):
    observer = Recording()
    h = await make_engine(engine_options={"observer": observer})
    fake_bfl.script(Behaviour(final_status="Error"))
    await h.generate(2)
    await h.engine.wait_idle()
    assert observer.of(2)[-2:] == ["failed", "told"]
