"""A local fake Discord that the *real* discord.py client logs in to, for offline end-to-end tests.

One ``aiohttp.web`` application on ``127.0.0.1:<random port>`` serves

* the REST API under ``/api/v10`` (only the routes a slash-command image bot uses; every other route
  is recorded in :attr:`FakeDiscord.unhandled` and answered with a 404),
* the websocket gateway at ``/gateway`` (HELLO → IDENTIFY → READY → GUILD_CREATE, heartbeats, RESUME),
* uploaded attachments at ``/attachments/{channel_id}/{attachment_id}/{filename}`` on a second
  listener, :attr:`FakeDiscord.cdn_url` (another origin, as Discord's CDN is: its own port on
  ``127.0.0.1``, or another loopback host with ``cdn_host="127.0.0.2"``).

discord.py is pointed at it with two class attributes (the bot does this itself from its settings
``DISCORD_API_URL`` / ``DISCORD_GATEWAY_URL``; tests can use ``monkeypatch``)::

    discord.http.Route.BASE = fake.api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

Typical test::

    # fixtures from conftest.py: fake_discord (started, assert_clean() at teardown) and
    # discord_endpoints (monkeypatches Route.BASE / DEFAULT_GATEWAY to point at it)
    async def test_imagine(discord_endpoints):
        fake = discord_endpoints
        async with fake.run_bot(build_bot(settings, guild_ready_timeout=0.05)) as bot:
            it = await fake.slash("imagine", {"prompt": "a red fox"})
            await it.wait_acked()
            await it.wait_for(lambda it: it.original_message and it.original_message["attachments"])
            assert fake.attachment_bytes(it.original_message) == PNG

Discord rules enforced (each failure is answered exactly as Discord answers it, and recorded in
:attr:`FakeDiscord.violations` as a :class:`Violation`; tests that expect one remove it with
:meth:`FakeDiscord.take_violations`):

=====================================================================  ======  ======
rule                                                                   status  code
=====================================================================  ======  ======
unknown interaction id/token on ``/interactions/.../callback``          404     10062
initial response later than ``ack_deadline_s`` after dispatch           404     10062
second initial response                                                 400     40060
callback type not valid for the interaction type (e.g. 7 for a slash)  400     50035
webhook call with an unknown token or a foreign application id          404     10015
webhook call before the initial response, after a missed deadline, or  404     10015
with an autocomplete token
webhook call with a token older than ``token_ttl_s``                    401     50027
webhook/channel message id that does not exist / not this interaction   404     10008
any file larger than the interaction's ``attachment_size_limit``        413     40005
more than 10 files                                                      400     50035
content > 2000, > 10 embeds, embed title 256 / description 4096 /       400     50035
25 fields / field name 256 / value 1024 / footer 2048 / author 256 /
total 6000, components (5 rows × 5, custom_id 1-100 and unique,
IS_COMPONENTS_V2 without content/embeds), ``attachments[].id`` that
refers to neither an upload nor a kept attachment, bad command sync
(duplicate names, required option after an optional one)
creating a message with no content, embeds, components or files        400     50006
body that is not JSON / ``payload_json`` that is not JSON               400     50109
bot route without ``Authorization: Bot <token>``                        401     0
channel route for an unknown channel; unknown user                      404     10003/10013
channel send without VIEW_CHANNEL / SEND_MESSAGES / ATTACH_FILES        403     50001/50013
role member counts without MANAGE_ROLES                                403     50013
wrong token in IDENTIFY or RESUME (websocket close code)                close   4004
privileged intent requested while ``allow_privileged_intents=False``    close   4014
unknown opcode / undecodable or binary frame / op before IDENTIFY /    close   4001/4002/
second IDENTIFY / IDENTIFY without integer intents                              4003/4005/4013
=====================================================================  ======  ======

:meth:`FakeDiscord.assert_clean` (called by the ``fake_discord`` fixture at teardown) also fails on
interactions the bot never even tried to answer (Discord shows "This interaction failed"), unless
the test sets ``it.allow_no_response = True``.

Schema validation: every request body (JSON bodies and multipart ``payload_json``) is validated
against the matching operation of Discord's OpenAPI spec (``DISCORD_OPENAPI_SPEC``, default
``<repo>/tests/specs/discord-openapi.json``, vendored). A failure is answered with 400/50035 and recorded
in :attr:`FakeDiscord.schema_errors` (not in ``violations``). The rule checks above run first; a
request that breaks a rule is rejected for that rule and is not schema-checked. Every JSON response
the fake produces is validated too; failures go to :attr:`FakeDiscord.response_schema_errors` (that
would be a bug in this fake). Validators are compiled once per process (see :func:`load_spec`).

Relaxations applied to the spec (request validation only; responses are checked strictly):

* ``SnowflakeType`` also accepts a non-negative JSON integer. Discord's API accepts int-parseable
  snowflakes (noted in discord-api-spec's README), and discord.py serialises ids as Python ints in
  several bodies: the upload index ``attachments[].id`` (``File.to_dict``), kept attachments
  (``Attachment.to_dict``), ``allowed_mentions.users/roles``, ``message_reference`` ids and
  ``create_dm``'s ``recipient_id``. Without the relaxation each of those is a false positive.

Discord behaviour emulated on purpose (see also :attr:`FakeDiscord.warnings`):

* A follow-up sent while the deferred (type 5) original is still loading *replaces the loading
  message* (Discord's deprecated behaviour): it edits ``@original``, keeps the defer's ephemerality
  and ignores the follow-up's own ephemeral flag. A warning is recorded.
* ``@original`` of a component interaction answered with type 6/7 is the clicked message.
* Without the GUILD_MEMBERS intent, GUILD_CREATE carries only the bot's own member (as Discord does);
  with it, every member (and ``member_count == len(members)``, so discord.py never sends op 8).
* ``add_role`` / ``add_member`` / ``add_channel`` after the bot connected queue GUILD_ROLE_CREATE /
  GUILD_MEMBER_ADD (members intent only) / CHANNEL_CREATE, sent before the next dispatched
  interaction (or by ``await fake.flush_events()``), so the bot's cache matches the payloads.
* Messages sent through interactions and webhooks parse only user mentions by default; channel
  messages parse users, roles and ``@everyone``; ``allowed_mentions`` is honoured; mentions in
  Components V2 text displays count like those in ``content``. The resulting
  ``mentions`` / ``mention_roles`` / ``mention_everyone`` are stored on the message.

Faults (``faults.py``; used by the soak, ``benchmarks/soak.py``): ``fake.faults.script(operation, Fault…)``
or ``fake.faults.source = RandomDiscordFaults(seed, DiscordFaultRates(...))`` inject, per request, a 429
without the proxy headers discord.py needs to retry (so it gives up), 5xx, a dead interaction token
(401/50027 or 404/10015 on webhook routes from then on), a slow answer, or a dropped connection
(before or after the request took effect). Injected faults are counted in ``fake.faults.log`` and
``RecordedCall.fault``, not as violations.

What durable delivery needs, as Discord does it:

* ``POST /channels/{id}/messages`` with a ``nonce`` and ``enforce_nonce: true`` repeated within
  ``nonce_window_s`` (default 300 s) returns the first message instead of creating a duplicate
  (``RecordedCall.nonce_reused``); the created message carries its ``nonce``.
* ``POST /users/@me/channels`` opens a DM channel; a message to the DM of a user in
  ``fake.closed_dms`` is refused 403/50007 ("Cannot send messages to this user").
* ``fake.message_history[message_id]``: every version of a message (:class:`MessageVersion`: text,
  attachments, embeds, flags), so a test can see an image replaced by a text.

Several servers: ``gid = fake.add_guild("other")``, then ``add_channel(..., guild_id=gid)`` and
``add_member(..., guild_id=gid)``; GUILD_CREATE is sent for every server, and an interaction sent in
a channel carries that channel's server.

Failures on demand: :meth:`FakeDiscord.fail_interaction_requests` makes an interaction's initial
response or its message edits fail as an unreachable Discord would (the connection dropped with no
answer, or a 5xx), for one member or everyone, a number of times; nothing the request asked for is
applied and :attr:`RecordedCall.fault` says what was injected.

Time: every deadline uses ``clock`` (default :class:`AdjustableClock`, a monotonic clock that tests
can move forward with ``fake.clock.advance(seconds)`` instead of sleeping).

Everything the bot does is recorded (:attr:`FakeDiscord.calls`, :attr:`FakeDiscord.messages`,
:attr:`FakeDiscord.gateway_events`, ...) and every change notifies an :class:`asyncio.Condition`, so
:meth:`FakeDiscord.wait_for` / :meth:`SentInteraction.wait_for` wake up as soon as something happens.

Layout (import everything from this package; the modules are an implementation detail):
``server`` (:class:`FakeDiscord`: state, lifecycle, waiting, inspection) composed from the mixins
``guild`` (roles, users, members, channels, permissions), ``routing`` (route table, recording, rule
and schema checks), ``rest_app`` (the bot's user, application, gateway URL, DMs, commands, members),
``rest_messages`` (channel messages and the message model), ``rest_interactions`` (callbacks and
webhooks), ``gateway`` and ``interactions`` (driving slash commands, autocomplete, buttons, selects,
modals, context menus); plus ``constants``, ``records``, ``spec``, ``commands`` (option building,
sync rules), ``limits`` (message limits) and ``helpers``.
"""

from tests.e2e.fake_discord.constants import (
    API_PREFIX,
    DEFAULT_TOKEN,
    AdjustableClock,
    Intents,
    MessageFlags,
    Perm,
    snowflake,
)
from tests.e2e.fake_discord.faults import (
    REQUEST_OPERATIONS,
    WEBHOOK_OPERATIONS,
    DiscordFaultRates,
    Fault,
    FaultPlan,
    RandomDiscordFaults,
)
from tests.e2e.fake_discord.records import (
    CommandSync,
    GatewayEvent,
    InteractionFault,
    MessageVersion,
    RecordedCall,
    SchemaError,
    SentInteraction,
    UploadedFile,
    Violation,
)
from tests.e2e.fake_discord.server import FakeDiscord
from tests.e2e.fake_discord.spec import OpenAPISpec, default_spec_path, load_spec

__all__ = [
    "API_PREFIX",
    "DEFAULT_TOKEN",
    "REQUEST_OPERATIONS",
    "WEBHOOK_OPERATIONS",
    "AdjustableClock",
    "CommandSync",
    "DiscordFaultRates",
    "FakeDiscord",
    "Fault",
    "FaultPlan",
    "GatewayEvent",
    "Intents",
    "InteractionFault",
    "MessageFlags",
    "MessageVersion",
    "OpenAPISpec",
    "Perm",
    "RandomDiscordFaults",
    "RecordedCall",
    "SchemaError",
    "SentInteraction",
    "UploadedFile",
    "Violation",
    "default_spec_path",
    "load_spec",
    "snowflake",
]
