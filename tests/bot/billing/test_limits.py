import pytest

from bot.audit import AuditLog, Subject, SubjectKind
from bot.billing.caps import Source
from bot.billing.ledger import Limit, Metric, Scope
from bot.billing.limits import LimitSetting, LimitsService
from bot.config import Period, Settings
from bot.server_settings import ServerSettings

GUILD, ALICE, MOD = 100, 1, 9
ARTISTS, VIP = 501, 502


@pytest.fixture
def settings():
    return Settings(_env_file=None, discord_token="t" * 10, bfl_api_key="k" * 10)


@pytest.fixture
def audit(db, clock):
    return AuditLog(db, clock)


@pytest.fixture
def limits(db, settings, audit, clock):
    return LimitsService(db, settings, audit, clock)


@pytest.fixture
def server(db, audit):
    return ServerSettings(db, audit)


def member_limits(all_limits):
    return {(lim.metric, lim.period): lim for lim in all_limits if lim.scope is Scope.MEMBER}


async def put(limits, kind, target_id, metric, period, value):
    setting = LimitSetting(Subject(kind, target_id), metric, period, value)
    return await limits.set_limit(GUILD, setting, actor_id=MOD)


async def test_defaults_are_conservative_and_always_bounded(limits, settings):
    result = await limits.limits_for(GUILD, ALICE, [])
    assert (
        Limit(Scope.MEMBER, Metric.USD, Period.DAY, settings.default_member_daily_budget_micros, Source.BOT_DEFAULT)
        in result
    )
    assert any(lim.scope is Scope.MEMBER and lim.metric is Metric.IMAGES for lim in result)
    assert any(lim.scope is Scope.SERVER for lim in result)
    assert any(lim.scope is Scope.BOT for lim in result)


async def test_everyone_role_is_the_server_default(limits):
    await put(limits, SubjectKind.ROLE, GUILD, Metric.USD, Period.WEEK, 2_000_000)
    mine = member_limits(await limits.limits_for(GUILD, ALICE, []))
    assert mine[(Metric.USD, Period.WEEK)].value == 2_000_000
    assert (Metric.USD, Period.DAY) not in mine  # the bot default no longer applies to dollars
    assert (Metric.IMAGES, Period.DAY) in mine  # but still to images, which nobody set


async def test_most_generous_role_wins_per_period(limits):
    await put(limits, SubjectKind.ROLE, GUILD, Metric.USD, Period.DAY, 500_000)
    await put(limits, SubjectKind.ROLE, ARTISTS, Metric.USD, Period.DAY, 3_000_000)
    mine = member_limits(await limits.limits_for(GUILD, ALICE, [ARTISTS]))
    assert mine[(Metric.USD, Period.DAY)].value == 3_000_000
    assert (mine[(Metric.USD, Period.DAY)].source, mine[(Metric.USD, Period.DAY)].role_id) == (Source.ROLE, ARTISTS)


async def test_a_role_silent_about_a_period_does_not_lift_another_roles_cap(limits):
    await put(limits, SubjectKind.ROLE, GUILD, Metric.USD, Period.DAY, 500_000)
    await put(limits, SubjectKind.ROLE, VIP, Metric.USD, Period.WEEK, 20_000_000)
    mine = member_limits(await limits.limits_for(GUILD, ALICE, [VIP]))
    assert mine[(Metric.USD, Period.DAY)].value == 500_000
    assert mine[(Metric.USD, Period.WEEK)].value == 20_000_000
    assert (Metric.USD, Period.MONTH) not in mine


async def test_member_override_beats_roles(limits):
    await put(limits, SubjectKind.ROLE, ARTISTS, Metric.IMAGES, Period.DAY, 50)
    await put(limits, SubjectKind.MEMBER, ALICE, Metric.IMAGES, Period.MONTH, 3)
    mine = member_limits(await limits.limits_for(GUILD, ALICE, [ARTISTS]))
    assert [key for key in mine if key[0] is Metric.IMAGES] == [(Metric.IMAGES, Period.MONTH)]
    await limits.clear_member(GUILD, ALICE, actor_id=MOD)
    mine = member_limits(await limits.limits_for(GUILD, ALICE, [ARTISTS]))
    assert mine[(Metric.IMAGES, Period.DAY)].value == 50


async def test_server_budget_replaces_the_default(limits):
    await put(limits, SubjectKind.SERVER, GUILD, Metric.USD, Period.MONTH, 25_000_000)
    servers = [lim for lim in await limits.limits_for(GUILD, ALICE, []) if lim.scope is Scope.SERVER]
    assert [(s.period, s.value) for s in servers] == [(Period.MONTH, 25_000_000)]


async def test_limits_do_not_leak_between_servers(limits):
    await put(limits, SubjectKind.MEMBER, ALICE, Metric.USD, Period.DAY, 7)
    other = member_limits(await limits.limits_for(GUILD + 1, ALICE, []))
    assert other[(Metric.USD, Period.DAY)].source == Source.BOT_DEFAULT


async def test_every_change_is_audited_with_old_and_new(limits, server, audit):
    await put(limits, SubjectKind.ROLE, ARTISTS, Metric.USD, Period.DAY, 1_000_000)
    entry, old = await put(limits, SubjectKind.ROLE, ARTISTS, Metric.USD, Period.DAY, 2_000_000)
    assert old is not None and old.value == 1_000_000
    assert (entry.old_value, entry.new_value) == ("$1.00 per day", "$2.00 per day")
    await server.update(GUILD, "paused", 1, actor_id=MOD, action="generation.pause", shown="1")
    log = await audit.recent(GUILD)
    assert [e.action for e in log] == ["generation.pause", "usd limit.set", "usd limit.set"]
    assert all(e.actor_id == MOD for e in log)
    assert (await server.guild_settings(GUILD)).paused
    assert [e.target for e in log] == ["server", f"role:{ARTISTS}", f"role:{ARTISTS}"]  # ids, never mentions


async def test_unknown_guild_setting_is_refused(server):
    with pytest.raises(ValueError, match="unknown guild setting"):
        await server.update(GUILD, "paused; DROP TABLE", 1, actor_id=MOD, action="x", shown=None)


async def break_audit_writes(db):
    """Make every audit_log insert fail inside the database (a real failure, not a mock)."""
    if db.backend == "sqlite":
        await db.execute(
            "CREATE TRIGGER audit_unavailable BEFORE INSERT ON audit_log"
            " BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END"
        )
    else:
        await db.execute(
            "CREATE FUNCTION audit_unavailable() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$"
        )
        await db.execute(
            "CREATE TRIGGER audit_unavailable BEFORE INSERT ON audit_log"
            " FOR EACH ROW EXECUTE FUNCTION audit_unavailable()"
        )


async def test_a_grant_and_its_audit_row_are_written_together(limits, audit, db, clock):
    from bot.billing.ledger import Ledger

    ledger = Ledger(db, clock)
    entry = await limits.grant(ledger, guild_id=GUILD, user_id=ALICE, micros=1_000_000, actor_id=MOD)
    assert (entry.action, entry.new_value) == ("grant", "+$1.00")
    assert [(e.action, e.target) for e in await audit.recent(GUILD)] == [("grant", f"member:{ALICE}")]
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'grant'") == 1
    [status] = await ledger.statuses(GUILD, ALICE, [Limit(Scope.MEMBER, Metric.USD, Period.DAY, 0, "test")])
    assert status.granted == 1_000_000


async def test_a_grant_whose_audit_row_cannot_be_written_grants_nothing(limits, db, clock):
    from bot.billing.ledger import Ledger

    await break_audit_writes(db)
    ledger = Ledger(db, clock)
    with pytest.raises(Exception, match="audit log unavailable"):
        await limits.grant(ledger, guild_id=GUILD, user_id=ALICE, micros=1_000_000, actor_id=MOD)
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger") == 0
    assert await db.fetch_value("SELECT COUNT(*) FROM usage WHERE granted_micros != 0") == 0
    [status] = await ledger.statuses(GUILD, ALICE, [Limit(Scope.MEMBER, Metric.USD, Period.DAY, 0, "test")])
    assert status.granted == 0
