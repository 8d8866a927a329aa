"""The queued texts a member sees (cogs/_presenter.py): a place, or a paused server."""

from bot.engine.fairness import PAUSED, queued_progress
from cogs._presenter import progress_text


def test_a_paused_servers_queued_request_says_so_instead_of_a_place():
    text = progress_text(queued_progress("flux-pro-1.1", PAUSED, median_seconds=10.0, org_cap=24))
    assert text.startswith("⏸️ Paused by this server's moderators") and "runs when they resume" in text
    assert "#" not in text and "about" not in text


def test_a_paused_group_says_so_with_its_size():
    from dataclasses import replace

    progress = replace(queued_progress("flux-2-pro", PAUSED, median_seconds=None, org_cap=24), count=4, queued=4)
    text = progress_text(progress)
    assert text.startswith("⏸️ Paused") and "4 images with FLUX.2 [pro]" in text and progress.cancellable


def test_a_running_servers_queued_request_shows_its_place_and_wait():
    assert (
        progress_text(queued_progress("flux-pro-1.1", 3, median_seconds=10.0, org_cap=24))
        == "⏳ #3 in queue · about 20 s"
    )
