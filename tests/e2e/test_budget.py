"""Quotas, budgets and the moderator commands, through the real bot and the fake Discord."""

import asyncio
import csv
import io

import pytest

import cogs._admission
from tests.e2e.support import MEMBER_PERMISSIONS, first_answer, hold_admissions, rows, text_of, uid
from tests.fakes.fake_bfl import Behaviour


async def budget(harness, subcommand, user, **options):
    interaction = await harness.fake.slash("budget", options, subcommand=subcommand, user=user)
    await first_answer(harness, interaction)
    if interaction.response_type == 5:  # deferred (report): wait for the real answer
        await harness.fake.wait_for(
            lambda: interaction.followups or not interaction.original_message.get("flags", 0) & 128
        )
    return interaction


async def test_member_without_permission_changes_nothing(harness, people):
    target = people["member"]
    for subcommand, options in [
        ("set", {"who": uid(target), "amount": "100", "period": "day"}),
        ("images", {"who": uid(target), "count": 1000, "period": "day"}),
        ("server", {"amount": "1000", "period": "month"}),
        ("grant", {"member": uid(target), "amount": "50"}),
        ("pause", {}),
    ]:
        interaction = await budget(harness, subcommand, people["member"], **options)
        assert interaction.ephemeral and "Only moderators" in text_of(interaction), subcommand
    assert await rows(harness, "SELECT * FROM limits") == []
    assert await rows(harness, "SELECT * FROM audit_log") == []
    assert await rows(harness, "SELECT * FROM ledger") == []
    assert await rows(harness, "SELECT * FROM guild_settings") == []


async def test_moderator_sets_a_limit_and_the_audit_log_and_mod_log_show_it(harness, people):
    fake = harness.fake
    modlog = fake.add_channel("mod-log")
    await budget(harness, "modlog", people["mod"], channel=int(modlog["id"]))
    interaction = await budget(harness, "set", people["mod"], who=uid(people["member"]), amount="2.50", period="week")
    assert interaction.ephemeral and "$2.50 per week" in text_of(interaction)
    assert await rows(harness, "SELECT target_kind, target_id, metric, period, value FROM limits") == [
        ("member", uid(people["member"]), "usd", "week", 2_500_000)
    ]
    audit = await rows(harness, "SELECT actor_id, action, old_value, new_value FROM audit_log ORDER BY id")
    assert audit[-1] == (uid(people["mod"]), "usd limit.set", None, "$2.50 per week")
    posted = await fake.wait_for(
        lambda: [m for m in fake.messages.values() if m["channel_id"] == modlog["id"] and "$2.50" in m["content"]]
    )
    assert not posted[0].get("mention_everyone") and not posted[0].get("mentions")  # the mod-log pings nobody


async def test_moderator_role_is_set_by_admins_and_then_trusted(harness, people):
    fake = harness.fake
    helpers = fake.add_role("helpers")
    helper = fake.add_member(name="helper", roles=[helpers], permissions=MEMBER_PERMISSIONS)
    refused = await budget(harness, "modrole", people["mod"], role=helpers)
    assert "Only administrators" in text_of(refused)
    await budget(harness, "modrole", people["admin"], role=helpers)
    interaction = await budget(harness, "images", helper, who=uid(people["member"]), count=3, period="day")
    assert "3 images per day" in text_of(interaction)


@pytest.mark.parametrize(
    ("subcommand", "options", "text"),
    [
        ("set", {"amount": "-5", "period": "day"}, "cannot be negative"),
        ("set", {"amount": "lots", "period": "day"}, "not a dollar amount"),
        ("set", {"amount": "9999999", "period": "day"}, "unreasonably large"),
        ("grant", {"amount": "0"}, "more than $0"),
    ],
)
async def test_bad_input_gets_a_clear_error_and_changes_nothing(harness, people, subcommand, options, text):
    key = "member" if subcommand == "grant" else "who"
    interaction = await budget(harness, subcommand, people["mod"], **{key: uid(people["member"])}, **options)
    assert interaction.ephemeral and text in text_of(interaction)
    assert await rows(harness, "SELECT * FROM limits") == []
    assert await rows(harness, "SELECT * FROM ledger") == []
    assert await rows(harness, "SELECT * FROM audit_log") == []


async def test_a_bot_cannot_get_a_budget(harness, people):
    robot = harness.fake.add_member(name="robot", bot=True)
    interaction = await budget(harness, "set", people["mod"], who=uid(robot), amount="1", period="day")
    assert "Bots can't" in text_of(interaction)
    assert await rows(harness, "SELECT * FROM limits") == []


async def test_unknown_period_sent_past_the_client_is_refused(harness, people):
    interaction = await harness.fake.slash(
        "budget", {"who": uid(people["member"]), "amount": "1", "period": "year"}, subcommand="set",
        user=people["mod"], strict_options=False,
    )  # fmt: skip
    await interaction.wait_acked()
    assert interaction.ephemeral
    assert await rows(harness, "SELECT * FROM limits") == []


async def test_fifty_simultaneous_requests_from_a_member_allowed_five(harness, people):
    member = people["member"]
    await budget(harness, "images", people["mod"], who=uid(member), count=5, period="day")
    harness.bfl.default = Behaviour(pending_polls=1)
    interactions = await asyncio.gather(
        *(harness.imagine(user=member, prompt=f"image {i}", wait=False) for i in range(50))
    )
    await asyncio.gather(*(harness.finished(it, timeout=60) for it in interactions))
    delivered = [it for it in interactions if not it.ephemeral and not it.followups]
    refused = [it for it in interactions if it.ephemeral or it.followups]
    assert len(delivered) == 5 and len(refused) == 45
    assert all("daily image quota is used up (5 of 5 images)" in text_of(it) for it in refused)
    assert all(it.original_message["attachments"] for it in delivered)
    assert len(harness.bfl.submits) == 5
    charges = await rows(harness, "SELECT COUNT(*) FROM ledger WHERE kind = 'settle' AND user_id = ?", (uid(member),))
    assert charges == [(5,)]
    assert await harness.services.ledger.verify_counters() == []


async def test_quota_shows_what_is_left_and_prices(harness, people):
    member = people["member"]
    await harness.imagine(user=member)
    interaction = await harness.fake.slash("quota", user=member)
    await interaction.wait_acked()
    text = text_of(interaction)
    assert interaction.ephemeral
    assert "Your daily budget: **$0.46** left of $0.50 (spent $0.04)" in text
    assert "Your daily images: **9** left of 10 (used 1)" in text
    assert "resets <t:" in text and "FLUX.2 [klein] 4B" in text


async def test_pause_stops_generation_and_resume_restarts_it(harness, people):
    await budget(harness, "pause", people["mod"])
    refused = await harness.imagine(user=people["member"])
    assert refused.ephemeral and "paused" in text_of(refused)
    assert harness.bfl.submits == []
    await budget(harness, "resume", people["mod"])
    done = await harness.imagine(user=people["member"])
    assert done.original_message["attachments"]


async def test_grant_lets_a_member_past_their_budget_once(harness, people):
    member = people["member"]
    await budget(harness, "set", people["mod"], who=uid(member), amount="0.04", period="day")
    await harness.imagine(user=member, prompt="one")
    refused = await harness.imagine(user=member, prompt="two")
    assert "budget doesn't cover" in text_of(refused)
    await budget(harness, "grant", people["mod"], member=uid(member), amount="0.04")
    granted = await harness.imagine(user=member, prompt="three")
    assert granted.original_message["attachments"]


async def test_a_grant_whose_audit_row_cannot_be_written_grants_nothing(harness, people):
    """The grant and its audit row are one transaction: a moderator's grant is never unaudited."""
    from tests.bot.billing.test_limits import break_audit_writes

    await break_audit_writes(harness.services.db)
    interaction = await budget(harness, "grant", people["mod"], member=uid(people["member"]), amount="1.00")
    assert interaction.ephemeral and "Something went wrong" in text_of(interaction)
    assert await rows(harness, "SELECT * FROM ledger") == []
    assert await rows(harness, "SELECT * FROM usage WHERE granted_micros != 0") == []


@pytest.fixture
async def drifted_books(backend, tmp_path):
    """The bot's database, before the bot starts, with a spend counter that disagrees with the ledger."""
    from bot.billing.ledger import Ledger, ReserveTerms
    from bot.storage.database import Database

    url = backend.get("database_url")
    db = await (Database.connect(url, pool_size=2) if url else Database.open(tmp_path / "fluxcord.sqlite3"))
    try:
        await Ledger(db).reserve(
            job_id=1, guild_id=1, user_id=2, model="flux-pro-1.1", estimated_micros=40_000, terms=ReserveTerms([], 10)
        )  # fmt: skip
        await db.execute("UPDATE usage SET micros = micros + 7 WHERE scope = 'bot'")  # day, week and month
    finally:
        await db.close()


@pytest.mark.parametrize("bot_settings_overrides", [{"metrics_port": 0}])
async def test_drift_found_at_start_shows_in_the_metric_and_the_report(drifted_books, harness, people):
    from tests.e2e.test_ops import scrape, value

    check = await harness.fake.wait_for(lambda: harness.services.ops.bookkeeping.last)  # checked at start
    assert check.drift == 3 and all("'bot'" in problem for problem in check.problems)
    samples = await scrape(harness)
    assert value(samples, "fluxcord_ledger_counter_drift") == 3
    assert value(samples, "fluxcord_ledger_counter_checks_total", result="drift") == 1
    report = await budget(harness, "report", people["mod"], period="day")
    assert "3 spend counters disagree with the ledger" in text_of(report)

    await harness.services.db.execute("UPDATE usage SET micros = micros - 7 WHERE scope = 'bot'")  # repaired
    await harness.services.ops.bookkeeping.run()  # the daily check
    samples = await scrape(harness)
    assert value(samples, "fluxcord_ledger_counter_drift") == 0
    assert value(samples, "fluxcord_ledger_counter_checks_total", result="clean") == 1
    report = await budget(harness, "report", people["mod"], period="day")
    assert "disagree with the ledger" not in text_of(report)


async def test_report_and_export(harness, people):
    await harness.imagine(user=people["member"])
    report = await budget(harness, "report", people["mod"], period="day")
    text = text_of(report)
    assert "BFL balance" in text and "credits" in text and f"<@{uid(people['member'])}>: $0.04" in text
    export = await budget(harness, "export", people["mod"])
    assert export.response_type == 5 and export.ephemeral  # deferred before the first query
    await export.wait_for(lambda: (export.original_message or {}).get("attachments"))  # the file: the export is done
    assert "2 rows in one file" in export.original_message["content"]
    assert export.followups == []  # one file: on the answer itself, as before
    file = harness.fake.attachment_file(export.original_message, 0)
    assert file.filename == f"fluxcord-ledger-{harness.fake.guild_id}.csv"
    table = list(csv.DictReader(io.StringIO(file.data.decode())))
    assert [row["kind"] for row in table] == ["reserve", "settle"]
    assert sum(float(row["server_usd"]) for row in table) == pytest.approx(0.04)


async def test_a_long_export_comes_in_parts_that_fit_the_upload_limit_with_progress(harness, people, monkeypatch):
    from cogs import _export

    members = [uid(people["member"]) + n for n in range(300)]
    for n, member in enumerate(members):  # 300 ledger rows, about 24 kB of CSV
        await harness.services.ledger.grant(guild_id=harness.fake.guild_id, user_id=member, micros=n + 1, actor_id=1)
    monkeypatch.setattr(_export, "PROGRESS_SECONDS", 0.0)  # show progress at every chance
    export = await harness.fake.slash(
        "budget", {}, subcommand="export", user=people["mod"], attachment_size_limit=8 * 1024
    )
    await export.wait_for(lambda: "300 rows in" in (export.original_message or {}).get("content", ""), timeout=10)
    files = [harness.fake.attachment_file(message, 0) for message in export.followups]
    assert len(files) >= 3 and all(len(f.data) <= 8 * 1024 for f in files)
    names = [f.filename for f in files]
    assert names == [f"fluxcord-ledger-{harness.fake.guild_id}-part{n}.csv" for n in range(1, len(files) + 1)]
    rows = [row for f in files for row in csv.DictReader(io.StringIO(f.data.decode()))]  # each part has the header
    assert [int(row["user_id"]) for row in rows] == members
    assert [row["member_usd"] for row in rows] == [f"0.{n + 1:06d}" for n in range(300)]
    shown = [c.json.get("content", "") for c in export.calls if c.method == "PATCH" and isinstance(c.json, dict)]
    assert any(text.startswith("Exporting the ledger…") and "of 300 rows" in text for text in shown)
    assert f"{len(files)} files, each with the header row" in export.original_message["content"]
    assert all(message["flags"] & 64 for message in export.followups)  # private, like the answer


async def test_a_refusal_after_a_slow_admission_is_still_private(harness, people, monkeypatch):
    """When the database is slow the bot acknowledges first; a refusal must then stay ephemeral."""
    fake = harness.fake
    await budget(harness, "images", people["mod"], who=uid(people["member"]), count=0, period="day")
    monkeypatch.setattr(cogs._admission, "ACK_BUDGET_SECONDS", 0.01)
    released = hold_admissions(monkeypatch)
    interaction = await harness.imagine(user=people["member"], wait=False)
    await interaction.wait_acked()
    assert interaction.response_type == 5  # deferred publicly while admission was still running
    released.set()
    await interaction.wait_for(lambda: interaction.followups)
    [followup] = interaction.followups
    assert followup["flags"] & 64 and "image quota is used up" in followup["content"]
    assert interaction.original_message_id in fake.deleted_messages  # no public trace of the refusal
    assert harness.bfl.submits == []
