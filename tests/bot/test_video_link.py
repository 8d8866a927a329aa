"""A video's link expiry, read from BFL's signed URL (``se=``, an Azure SAS time): what the card and the DM name."""

from datetime import UTC, datetime

from bot.models.video import link_expiry


def test_the_expiry_is_read_from_se_percent_escaped_or_not():
    url = "https://delivery.example/results/abc/sample.mp4?se=2026-12-08T06%3A16%3A25Z&sp=r&sig=x%2By"
    assert link_expiry(url) == datetime(2026, 12, 8, 6, 16, 25, tzinfo=UTC)
    assert link_expiry("https://d.example/v.mp4?sp=r&se=2026-12-08T06:16:25Z") == datetime(
        2026, 12, 8, 6, 16, 25, tzinfo=UTC
    )


def test_a_link_without_a_readable_se_has_no_expiry():
    assert link_expiry("https://d.example/v.mp4?sp=r&sig=x") is None
    assert link_expiry("https://d.example/v.mp4?se=tomorrow") is None
    assert link_expiry("") is None
