"""Self-tests of the fake Discord, driven by a small throwaway discord.py bot (the real client)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from PIL import Image

from tests.e2e.fake_discord import FakeDiscord, MessageFlags, Perm


def _png(width: int = 4, height: int = 3) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()


# --------------------------------------------------------------------------------------------------
# the throwaway bot


class ConfirmView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=60)

    @discord.ui.button(label="Confirm", custom_id="probe:confirm", style=discord.ButtonStyle.green)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content=f"pressed by {interaction.user.id}", view=None)


class PickView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=60)

    @discord.ui.select(
        custom_id="probe:select",
        options=[discord.SelectOption(label="Small", value="s"), discord.SelectOption(label="Large", value="l")],
    )
    async def size(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        await interaction.response.defer()  # type 6: deferred update of the clicked message
        await interaction.edit_original_response(content=f"size {select.values[0]}", view=None)
        await interaction.delete_original_response()


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    text = discord.ui.TextInput(label="Text", custom_id="probe:text", max_length=100)

    def __init__(self) -> None:
        super().__init__(custom_id="probe:form")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"got {self.text.value}")


class Probe(commands.Cog):
    budget = app_commands.Group(name="budget", description="Budget commands")

    def __init__(self, bot: ProbeBot) -> None:
        self.bot = bot

    @app_commands.command(name="draw", description="Defer, then edit @original with a file")
    async def draw(self, interaction: discord.Interaction, prompt: str, wait: bool = False) -> None:
        await interaction.response.defer(thinking=True)
        if wait:
            await self.bot.release.wait()
        try:
            await interaction.edit_original_response(
                content=f"done: {prompt}", attachments=[discord.File(io.BytesIO(PNG), "image.png")]
            )
        except discord.HTTPException as exc:
            self.bot.errors.append(exc)

    @app_commands.command(name="secret", description="Ephemeral reply and an ephemeral follow-up with a file")
    async def secret(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("only you", ephemeral=True)
        await interaction.followup.send("file", file=discord.File(io.BytesIO(b"s3cret"), "secret.txt"), ephemeral=True)

    @app_commands.command(name="slow", description="Acknowledges only when released")
    async def slow(self, interaction: discord.Interaction) -> None:
        await self.bot.release.wait()
        try:
            await interaction.response.send_message("finally")
        except discord.HTTPException as exc:
            self.bot.errors.append(exc)
            try:
                await interaction.followup.send("fallback")
            except discord.HTTPException as exc2:
                self.bot.errors.append(exc2)

    @app_commands.command(name="twice", description="Responds twice (like two processes on one token)")
    async def twice(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("first")
        try:
            # A fresh InteractionResponse bypasses discord.py's local InteractionResponded check.
            await discord.InteractionResponse(interaction).send_message("second")
        except discord.HTTPException as exc:
            self.bot.errors.append(exc)

    @app_commands.command(name="early", description="Follow-up before the initial response")
    async def early(self, interaction: discord.Interaction) -> None:
        try:
            await interaction.followup.send("too early")
        except discord.HTTPException as exc:
            self.bot.errors.append(exc)
        await interaction.response.send_message("ok")

    @app_commands.command(name="lazy", description="Defer, then follow up without editing @original")
    async def lazy(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("result", ephemeral=True)

    @app_commands.command(name="life", description="Exercises every webhook message route")
    async def life(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("a", view=PickView())
        original = await interaction.original_response()
        follow = await interaction.followup.send("b", wait=True)
        await follow.edit(content="b2")
        extra = await interaction.followup.send("c", wait=True)
        await extra.delete()
        self.bot.results["life"] = (original.id, follow.id, extra.id)

    @app_commands.command(name="pick", description="Echo resolved user and role options")
    async def pick(self, interaction: discord.Interaction, user: discord.Member, role: discord.Role) -> None:
        await interaction.response.send_message(
            f"user={user.id} role={role.id}:{role.name} "
            f"target_manage_guild={user.resolved_permissions.manage_guild}/{user.guild_permissions.manage_guild} "
            f"invoker_admin={interaction.permissions.administrator}"
        )

    @app_commands.command(name="button", description="Message with a button")
    async def button(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("press", view=ConfirmView())

    @app_commands.command(name="big", description="Uploads a 2 KiB file in the initial response")
    async def big(self, interaction: discord.Interaction) -> None:
        try:
            await interaction.response.send_message(file=discord.File(io.BytesIO(b"x" * 2048), "big.bin"))
        except discord.HTTPException as exc:
            self.bot.errors.append(exc)

    @app_commands.command(name="form", description="Shows a modal")
    async def form(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(FeedbackModal())

    @app_commands.command(name="color", description="Autocompleted option")
    async def color(self, interaction: discord.Interaction, name: str) -> None:
        await interaction.response.send_message(name)

    @color.autocomplete("name")
    async def color_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice]:
        return [app_commands.Choice(name=c, value=c) for c in ("red", "green", "reddish") if c.startswith(current)]

    @app_commands.command(name="upscale", description="Downloads an attachment option")
    async def upscale(self, interaction: discord.Interaction, image: discord.Attachment) -> None:
        await interaction.response.defer()
        data = await image.read()
        await interaction.edit_original_response(content=f"{len(data)} {image.filename} {image.content_type}")

    @budget.command(name="show", description="Subcommand")
    async def budget_show(self, interaction: discord.Interaction, amount: int) -> None:
        await interaction.response.send_message(f"budget {amount}")


class ProbeBot(commands.Bot):
    def __init__(self, guild_id: int, intents: discord.Intents) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            guild_ready_timeout=0.05,
            chunk_guilds_at_startup=False,
        )
        self.guild_id = guild_id
        self.release = asyncio.Event()
        self.errors: list[discord.HTTPException] = []
        self.results: dict[str, object] = {}

    async def setup_hook(self) -> None:
        guild = discord.Object(self.guild_id)
        await self.add_cog(Probe(self), guild=guild)
        await self.tree.sync(guild=guild)


@pytest.fixture
def bot_intents() -> discord.Intents:
    return discord.Intents.default()


@pytest.fixture
async def bot(discord_endpoints: FakeDiscord, bot_intents: discord.Intents) -> AsyncIterator[ProbeBot]:
    fake = discord_endpoints
    async with fake.run_bot(ProbeBot(fake.guild_id, bot_intents)) as probe:
        yield probe


@pytest.fixture
def fake(bot: ProbeBot, discord_endpoints: FakeDiscord) -> FakeDiscord:
    """The fake, with the probe bot connected and ready."""
    return discord_endpoints


def _call_ops(fake: FakeDiscord) -> list[str | None]:
    return [c.operation for c in fake.calls]


# --------------------------------------------------------------------------------------------------
# start-up


async def test_login_sync_and_ready(fake: FakeDiscord, bot: ProbeBot) -> None:
    """The real client logs in, syncs once, identifies with its intents and sees the guild."""
    assert _call_ops(fake)[:3] == ["get_my_user", "get_my_oauth2_application", "bulk_set_guild_application_commands"]
    assert all(c.auth for c in fake.calls)
    assert len(fake.command_syncs) == 1
    sync = fake.command_syncs[0]
    assert sync.guild_id == fake.guild_id
    assert {"draw", "secret", "slow", "twice", "pick", "button", "budget"} <= set(sync.names)
    assert fake.intents == discord.Intents.default().value
    assert bot.application_id == fake.application_id
    guild = bot.get_guild(fake.guild_id)
    assert guild is not None
    assert guild.get_channel(fake.channel_id).name == "general"
    assert guild.default_role.id == fake.guild_id
    assert await bot.is_owner(discord.Object(fake.owner_id))
    create = next(e for e in fake.gateway_events if e.t == "GUILD_CREATE")
    # Without the members intent Discord sends only the bot's own member.
    assert [m["user"]["id"] for m in create.d["members"]] == [str(fake.application_id)]
    assert create.d["member_count"] == len(fake.members)
    ready = next(e for e in fake.gateway_events if e.t == "READY")
    assert ready.d["resume_gateway_url"] == fake.gateway_url


@pytest.mark.parametrize("bot_intents", [discord.Intents.default() | discord.Intents(members=True)])
async def test_members_intent_gets_every_member(fake: FakeDiscord, bot: ProbeBot) -> None:
    """With GUILD_MEMBERS, GUILD_CREATE carries complete members and member_count == len(members)."""
    create = next(e for e in fake.gateway_events if e.t == "GUILD_CREATE")
    assert create.d["member_count"] == len(create.d["members"]) == len(fake.members)
    for member in create.d["members"]:
        assert {"user", "roles", "flags", "joined_at"} <= member.keys()
    assert not [e for e in fake.gateway_events if e.direction == "recv" and e.op == 8]
    guild = bot.get_guild(fake.guild_id)
    assert guild.get_member(int(fake.default_member["user"]["id"])) is not None


async def test_wrong_token_login_fails(discord_endpoints: FakeDiscord) -> None:
    """A wrong bot token is refused with 401, which discord.py turns into LoginFailure."""
    fake = discord_endpoints
    probe = ProbeBot(fake.guild_id, discord.Intents.default())
    async with probe:
        with pytest.raises(discord.LoginFailure):
            await probe.login("not-the-token")
    [violation] = fake.take_violations(0)
    assert violation.status == 401
    assert violation.path == "/users/@me"


@pytest.mark.parametrize(
    ("intents", "token", "close_code"),
    [(1, "wrong", 4004), (1 << 1, None, 4014)],
)
async def test_gateway_refuses_identify(
    discord_endpoints: FakeDiscord, intents: int, token: str | None, close_code: int
) -> None:
    """IDENTIFY with a wrong token closes 4004; a disallowed privileged intent closes 4014."""
    fake = discord_endpoints
    fake.allow_privileged_intents = False
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.gateway_url) as ws:
        hello = await ws.receive_json(timeout=2)
        assert hello["op"] == 10
        identify = {"token": token or fake.token, "intents": intents, "properties": {}}
        await ws.send_json({"op": 2, "d": identify})
        msg = await ws.receive(timeout=2)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == close_code
    assert [v.code for v in fake.take_violations()] == [close_code]


async def test_resume_after_reconnect(fake: FakeDiscord, bot: ProbeBot) -> None:
    """Op 7 makes the client reconnect and RESUME; the session keeps working."""
    await fake.request_reconnect()
    await fake.wait_for(lambda: any(e.t == "RESUMED" for e in fake.gateway_events))
    assert any(e.direction == "recv" and e.op == 6 for e in fake.gateway_events)
    await fake.wait_until_connected()
    it = await fake.slash("secret")
    await it.wait_acked()


# --------------------------------------------------------------------------------------------------
# responses


async def test_defer_then_edit_original_with_file(fake: FakeDiscord) -> None:
    """Slash → defer (type 5) → multipart PATCH @original; the file is stored, served and recorded."""
    it = await fake.slash("draw", {"prompt": "a red fox"})
    await it.wait_acked()
    assert it.response_type == 5
    assert it.ack_latency is not None and it.ack_latency < 1.0
    msg = await it.wait_for(
        lambda it: it.original_message and it.original_message["attachments"] and it.original_message
    )
    assert msg["content"] == "done: a red fox"
    assert not msg["flags"] & MessageFlags.LOADING
    assert fake.attachment_bytes(msg) == PNG
    att = msg["attachments"][0]
    assert (att["filename"], att["content_type"], att["width"], att["height"]) == ("image.png", "image/png", 4, 3)

    callback, edit = it.calls
    assert (callback.operation, callback.json, callback.auth) == ("create_interaction_response", {"type": 5}, False)
    assert callback.query == {"with_response": "1"}
    assert edit.operation == "update_original_webhook_message"
    assert edit.multipart and not edit.auth
    assert edit.files == [("image.png", PNG, "application/octet-stream")]
    assert edit.json["attachments"] == [{"id": 0, "filename": "image.png"}]  # int id: the relaxed snowflake

    async with aiohttp.ClientSession() as session, session.get(att["url"]) as resp:
        assert resp.status == 200
        assert await resp.read() == PNG


async def test_ephemeral_reply_and_followup(fake: FakeDiscord) -> None:
    """An ephemeral reply and an ephemeral multipart follow-up both carry flag 64."""
    it = await fake.slash("secret")
    await it.wait_acked()
    followups = await it.wait_for(lambda it: it.followups)
    assert it.ephemeral
    assert it.original_message["content"] == "only you"
    assert it.original_message["flags"] & MessageFlags.EPHEMERAL
    assert followups[0]["flags"] & MessageFlags.EPHEMERAL
    assert fake.attachment_bytes(followups[0]) == b"s3cret"
    post = fake.find_calls("execute_webhook")[0]
    assert post.query["wait"] == "1"
    assert post.files[0].filename == "secret.txt"


# --------------------------------------------------------------------------------------------------
# Discord's rules


@pytest.mark.parametrize("fake_discord_options", [{"ack_deadline_s": 0.2}])
async def test_ack_after_deadline_is_unknown_interaction(fake: FakeDiscord, bot: ProbeBot) -> None:
    """An initial response after the deadline gets 404/10062, and the dead token's follow-up 404/10015."""
    assert fake.ack_deadline_s == 0.2
    it = await fake.slash("slow")
    fake.clock.advance(fake.ack_deadline_s + 0.1)  # no sleeping: move the fake's clock past the deadline
    bot.release.set()
    await fake.wait_for(lambda: len(bot.errors) == 2)
    assert isinstance(bot.errors[0], discord.NotFound) and bot.errors[0].code == 10062
    assert bot.errors[1].code == 10015
    assert not it.acked and it.deadline_missed
    assert [v.code for v in fake.take_violations(10062, 10015)] == [10062, 10015]


async def test_injected_faults_make_discord_unreachable_without_applying_anything(
    fake: FakeDiscord, bot: ProbeBot
) -> None:
    """A dropped connection (no answer) or a 5xx, for one member's interaction requests, a number of times."""
    it = await fake.slash("slow")
    dropped = fake.fail_interaction_requests("callback", user=it.user_id, times=1)
    failing = fake.fail_interaction_requests("callback", how=500, times=1)
    fake.fail_interaction_requests("callback", user=fake.owner_id)  # another member's: never matches
    url = f"{fake.api_url}/interactions/{it.id}/{it.token}/callback"
    answer = {"type": 4, "data": {"content": "x"}}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):  # a transport error, not an HTTP answer
            async with session.post(url, json=answer):
                pass
        async with session.post(url, json=answer) as resp:
            assert resp.status == 500
    assert (dropped.hits, failing.hits) == (1, 1)
    assert [c.fault for c in it.calls] == ["dropped", "status 500"]
    assert not it.acked and it.original_message is None  # nothing was applied
    bot.release.set()
    await it.wait_acked()  # both faults are used up: the bot's own answer goes through
    assert it.original_message["content"] == "finally"

    edits = fake.fail_interaction_requests("webhook_edit", user=fake.default_member, times=1)
    drawn = await fake.slash("draw", {"prompt": "p"})
    await fake.wait_for(lambda: edits.hits == 1)
    assert drawn.acked
    assert drawn.original_message["flags"] & MessageFlags.LOADING  # the edit never landed
    with pytest.raises(ValueError):
        fake.fail_interaction_requests("channel_send")


async def test_second_initial_response_is_40060(fake: FakeDiscord, bot: ProbeBot) -> None:
    """A second initial response on the same token gets 400/40060."""
    it = await fake.slash("twice")
    await fake.wait_for(lambda: bot.errors)
    assert bot.errors[0].status == 400 and bot.errors[0].code == 40060
    assert it.original_message["content"] == "first"
    [violation] = fake.take_violations(40060)
    assert violation.token == it.token


async def test_expired_token_is_50027(fake: FakeDiscord, bot: ProbeBot) -> None:
    """Editing @original after the token TTL gets 401/50027."""
    it = await fake.slash("draw", {"prompt": "late", "wait": True})
    await it.wait_acked()
    fake.clock.advance(fake.token_ttl_s + 1)
    bot.release.set()
    await fake.wait_for(lambda: bot.errors)
    assert bot.errors[0].status == 401 and bot.errors[0].code == 50027
    assert fake.take_violations(50027)
    assert it.original_message["flags"] & MessageFlags.LOADING  # never completed


async def test_oversized_file_is_413(fake: FakeDiscord, bot: ProbeBot) -> None:
    """A file above the interaction's attachment_size_limit gets 413/40005."""
    it = await fake.slash("big", attachment_size_limit=1024)
    await fake.wait_for(lambda: bot.errors)
    assert bot.errors[0].status == 413 and bot.errors[0].code == 40005
    assert not it.acked
    [violation] = fake.take_violations(40005)
    assert "2048 bytes" in violation.detail


async def test_followup_before_initial_response_is_10015(fake: FakeDiscord, bot: ProbeBot) -> None:
    """Using the webhook before the initial response gets 404/10015; the later response still works."""
    it = await fake.slash("early")
    await it.wait_acked()
    assert bot.errors[0].code == 10015
    assert [v.code for v in fake.take_violations()] == [10015]


async def test_followup_while_loading_replaces_the_deferred_message(fake: FakeDiscord) -> None:
    """Discord's deprecated quirk: the first follow-up after a defer edits @original, keeping its ephemerality."""
    it = await fake.slash("lazy")
    msg = await it.wait_for(lambda it: it.original_message and it.original_message["content"] and it.original_message)
    assert msg["content"] == "result"
    assert not msg["flags"] & (MessageFlags.LOADING | MessageFlags.EPHEMERAL)
    assert it.followups == []
    assert fake.warnings and "still loading" in fake.warnings[0]


async def test_schema_validation_rejects_bad_bodies(fake: FakeDiscord, bot: ProbeBot) -> None:
    """Raw bodies that break Discord's spec get 400/50035 and land in schema_errors; bad JSON gets 50109."""
    it = await fake.slash("slow")
    url = f"{fake.api_url}/interactions/{it.id}/{it.token}/callback?with_response=1"
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("payload_json", json.dumps({"type": 4, "data": {"content": 5}}))
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"type": 99}) as resp:
            assert resp.status == 400
            assert resp.headers["Content-Type"] == "application/json"
            assert (await resp.json())["code"] == 50035
        async with session.post(url, data=form) as resp:
            assert resp.status == 400
        async with session.post(url, data=b"{not json", headers={"Content-Type": "application/json"}) as resp:
            assert (await resp.json())["code"] == 50109
    errors = fake.take_schema_errors()
    assert [e.operation for e in errors] == ["create_interaction_response"] * 2
    assert errors[1].body == {"type": 4, "data": {"content": 5}}
    assert fake.take_violations(50109)
    assert not it.acked  # rejected attempts do not acknowledge
    bot.release.set()
    await it.wait_acked()


async def test_message_limits_on_channel_send(fake: FakeDiscord, bot: ProbeBot) -> None:
    """Content over 2000 characters and embeds over 6000 in total are refused with 50035."""
    channel = bot.get_channel(fake.channel_id)
    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send("x" * 2001)
    assert too_long.value.code == 50035
    embeds = [discord.Embed(description="y" * 4000), discord.Embed(description="z" * 2500)]
    with pytest.raises(discord.HTTPException):
        await channel.send(embeds=embeds)
    files = [discord.File(io.BytesIO(b"f"), f"f{i}.txt") for i in range(11)]
    with pytest.raises(discord.HTTPException):
        await channel.send(files=files)
    assert [v.code for v in fake.take_violations(50035)] == [50035, 50035, 50035]
    sent = await channel.send(f"hi <@{fake.owner_id}> @everyone", allowed_mentions=discord.AllowedMentions.none())
    stored = fake.messages[str(sent.id)]
    assert stored["mentions"] == [] and stored["mention_everyone"] is False
    loud = await channel.send(f"hi <@{fake.owner_id}>")
    assert [u["id"] for u in fake.messages[str(loud.id)]["mentions"]] == [str(fake.owner_id)]


async def test_unknown_route_is_recorded(fake: FakeDiscord, bot: ProbeBot) -> None:
    """A route the fake does not implement answers 404 and is recorded in ``unhandled``."""
    with pytest.raises(discord.NotFound):
        await bot.fetch_invite("abc")
    [call] = fake.unhandled
    assert (call.method, call.path, call.status) == ("GET", "/invites/abc", 404)
    fake.unhandled.clear()


async def test_dm_channel_send(fake: FakeDiscord, bot: ProbeBot) -> None:
    """fetch_user → create_dm (int recipient_id) → send works against the fake."""
    user = await bot.fetch_user(fake.owner_id)
    dm = await user.create_dm()
    sent = await dm.send("psst")
    assert fake.messages[str(sent.id)]["channel_id"] == str(dm.id)


# --------------------------------------------------------------------------------------------------
# options and components


async def test_user_and_role_options_are_resolved(fake: FakeDiscord, bot: ProbeBot) -> None:
    """User and role options are built from the fake's guild model, with data.resolved."""
    mods = fake.add_role("mods", Perm.MANAGE_GUILD)
    mod = fake.add_member(name="mod", roles=[mods])
    it = await fake.slash("pick", {"user": mod, "role": mods}, user=fake.owner_member)
    await it.wait_acked()
    mod_id = mod["user"]["id"]
    assert it.original_message["content"] == (
        f"user={mod_id} role={mods}:mods target_manage_guild=True/True invoker_admin=True"
    )
    # The role was created after the bot connected: GUILD_ROLE_CREATE reached its cache first.
    assert bot.get_guild(fake.guild_id).get_role(mods).name == "mods"
    assert not [e for e in fake.gateway_events if e.t == "GUILD_MEMBER_ADD"]  # no members intent
    resolved = it.payload["data"]["resolved"]
    assert set(resolved) == {"users", "members", "roles"}
    assert resolved["members"][mod_id]["permissions"] == str(fake.member_permissions(mod))
    with pytest.raises(ValueError, match="missing required"):
        await fake.slash("pick", {"user": mod})


async def test_subcommand_and_autocomplete(fake: FakeDiscord) -> None:
    """Subcommands are nested as Discord does; autocomplete answers with type 8 choices."""
    it = await fake.slash("budget", {"amount": 5}, subcommand="show")
    await it.wait_acked()
    assert it.original_message["content"] == "budget 5"
    ac = await fake.autocomplete("color", {"name": "re"}, focused="name")
    await ac.wait_acked()
    assert ac.response_type == 8
    assert [c["name"] for c in ac.autocomplete_choices] == ["red", "reddish"]


async def test_attachment_option_is_downloadable(fake: FakeDiscord) -> None:
    """An attachment option resolves to a file the bot can download from the fake."""
    it = await fake.slash("upscale", {"image": ("in.png", PNG)})
    msg = await it.wait_for(lambda it: it.original_message and it.original_message["content"])
    assert msg == f"{len(PNG)} in.png image/png"
    assert len(fake.attachment_downloads) == 1


async def test_button_click_round_trip(fake: FakeDiscord) -> None:
    """A button click (type 3) is answered with an update (type 7) that edits the clicked message."""
    it = await fake.slash("button")
    await it.wait_acked()
    message = it.original_message
    assert message["components"][0]["components"][0]["custom_id"] == "probe:confirm"
    with pytest.raises(ValueError, match="no component"):
        await fake.click(message["id"], "probe:nope")
    clicker = fake.add_member(name="clicker")
    click = await fake.click(message["id"], "probe:confirm", user=clicker)
    await click.wait_acked()
    assert click.response_type == 7
    updated = fake.messages[message["id"]]
    assert updated["content"] == f"pressed by {clicker['user']['id']}"
    assert updated["components"] == []
    assert click.original_message is updated


async def test_modal_round_trip(fake: FakeDiscord) -> None:
    """A modal (type 9) is submitted (type 5) mirroring its layout, and the bot reads the value."""
    it = await fake.slash("form")
    await it.wait_acked()
    assert it.response_type == 9
    with pytest.raises(ValueError, match="no inputs"):
        await fake.submit_modal("probe:form", {"probe:text": "hi", "probe:other": "x"})
    with pytest.raises(ValueError, match="is required"):
        await fake.submit_modal("probe:form", {})
    sub = await fake.submit_modal("probe:form", {"probe:text": "hello"})
    msg = await sub.wait_for(lambda it: it.original_message)
    assert msg["content"] == "got hello"


async def test_wait_for_times_out_with_a_summary(fake_discord: FakeDiscord) -> None:
    """wait_for raises TimeoutError quickly and says what happened."""
    with pytest.raises(TimeoutError, match="calls"):
        await fake_discord.wait_for(lambda: False, timeout=0.05)


def test_payload_shape_without_a_bot() -> None:
    """The default guild model is consistent: @everyone id == guild id, computed permissions."""
    fake = FakeDiscord(validate_schema=False)
    assert fake.roles[fake.guild_id]["name"] == "@everyone"
    assert fake.member_permissions(fake.owner_member) == Perm.ALL
    admin = fake.add_member(roles=[fake.add_role("admins", Perm.ADMINISTRATOR)])
    assert fake.member_permissions(admin) == Perm.ALL
    plain = fake.add_member(permissions=Perm.MANAGE_GUILD)
    assert fake.member_permissions(plain) == Perm.MANAGE_GUILD
    assert not fake.member_permissions(fake.default_member) & (Perm.ADMINISTRATOR | Perm.MANAGE_GUILD)


async def test_webhook_message_routes_and_select(fake: FakeDiscord, bot: ProbeBot) -> None:
    """GET @original, follow-up edit/delete, a select click (type 6), edit and delete of @original."""
    it = await fake.slash("life")
    original_id, follow_id, extra_id = await fake.wait_for(lambda: bot.results.get("life"))
    assert [m["content"] for m in it.followups] == ["b2"]
    assert str(extra_id) in fake.deleted_messages
    assert fake.messages[str(follow_id)]["edited_timestamp"] is not None
    with pytest.raises(ValueError, match="not options"):
        await fake.click(original_id, "probe:select", values=["x"])
    click = await fake.click(original_id, "probe:select", values=["l"])
    await click.wait_acked()
    assert click.response_type == 6
    msg = await fake.wait_for(lambda: fake.deleted_messages.get(str(original_id)))
    assert msg["content"] == "size l" and msg["components"] == []
    assert click.original_message is None  # deleted
    ops = {c.operation for c in it.calls}
    assert {"get_original_webhook_message", "execute_webhook", "update_webhook_message"} <= ops
    assert "delete_webhook_message" in ops
    assert {c.operation for c in click.calls} == {
        "create_interaction_response",
        "update_original_webhook_message",
        "delete_original_webhook_message",
    }


async def test_channel_message_edit_delete_and_command_listing(fake: FakeDiscord, bot: ProbeBot) -> None:
    """Channel message edit/delete and fetching synced commands work against the fake."""
    channel = bot.get_channel(fake.channel_id)
    sent = await channel.send("x", file=discord.File(io.BytesIO(PNG), "a.png"))
    edited = await sent.edit(content="y", attachments=[])
    assert edited.content == "y" and edited.attachments == []
    await sent.delete()
    assert str(sent.id) in fake.deleted_messages
    cmds = await bot.tree.fetch_commands(guild=discord.Object(fake.guild_id))
    assert {c.name for c in cmds} == set(fake.command_syncs[-1].names)
    assert len(fake.command_syncs) == 1  # listing is not a sync


async def test_unanswered_interaction_is_reported(fake: FakeDiscord, bot: ProbeBot) -> None:
    """An interaction the bot silently ignores makes assert_clean fail unless allowed."""
    it = await fake.slash("ghost", {"x": "y"}, require_synced=False)  # the bot's tree has no /ghost
    fake.clock.advance(fake.ack_deadline_s + 1)
    assert it.deadline_missed and not it.calls
    with pytest.raises(AssertionError, match="never answered"):
        fake.assert_clean()
    it.allow_no_response = True
