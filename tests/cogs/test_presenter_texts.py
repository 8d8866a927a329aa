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


def test_a_videos_stages_read_as_a_video():
    """FLUX 3 video plays Pending → Reasoning → Generating; every text names a video, none an image."""
    from bot.engine.progress import Progress
    from bot.engine.states import JobStatus

    def text(status, stage=None, elapsed=0.0):
        return progress_text(Progress(status, "flux-3-video", bfl_stage=stage, elapsed_seconds=elapsed))

    assert text(JobStatus.SUBMITTING) == "📨 Sending to FLUX 3 Video…"
    assert text(JobStatus.GENERATING, "Pending") == "🎬 FLUX 3 Video is making your video…"
    assert text(JobStatus.GENERATING, "Reasoning") == "🧠 FLUX 3 Video is thinking about your motion prompt…"
    assert text(JobStatus.GENERATING, "Generating", 42.0) == "🎬 FLUX 3 Video is making your video… (42 s)"
    assert text(JobStatus.DOWNLOADING) == "📥 Fetching the video…"
    assert text(JobStatus.DELIVERING) == "📦 Posting your video…"
    assert progress_text(Progress(JobStatus.DOWNLOADING, "flux-2-pro")) == "📥 Fetching the image…"
