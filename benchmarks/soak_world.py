"""The soak's servers and members, and what they do: `/imagine` (singles and `count:N`), Cancel, pauses.

Everything goes through the fake Discord exactly as a member's client would send it. The plan is
drawn from one seeded RNG; what the bot does with it depends on timing, so two runs of a seed make
the same requests with the same faults attached to them, not byte-identical histories.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.fake_discord import FakeDiscord, Perm, SentInteraction

MEMBER_PERMISSIONS = Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES
MODELS = ("flux-pro-1.1", "flux-dev", "flux-2-klein-4b")  # models with a seed: (prompt, seed) names a job
SUBJECTS = ("a lighthouse in a storm", "a fox in the snow", "a red kite over hills", "a city at dawn")


@dataclass
class Server:
    """One server of the soak: its channel, its moderator and its members."""

    guild_id: int
    channel: dict[str, Any]
    moderator: dict[str, Any]
    members: list[dict[str, Any]]
    paused: bool = False


@dataclass
class Request:
    """One `/imagine` a member sent."""

    number: int
    interaction: SentInteraction
    guild_id: int
    user_id: int
    prompt: str
    model: str
    count: int  # 1: a single image; 2-4: a group
    private: bool

    @property
    def id(self) -> int:
        """The interaction id: the job's id (a single) or the group's id."""
        return self.interaction.id


def build_world(fake: FakeDiscord, rng: random.Random, *, servers: int = 3, members: int = 9) -> list[Server]:
    """``servers`` servers (the fake's own first) with a channel, a moderator and ``members`` members each.

    About one member in five has closed their DMs (a private result that cannot be delivered there
    must end another way).
    """
    world = []
    for index in range(servers):
        gid = fake.guild_id if index == 0 else fake.add_guild(f"soak server {index}")
        channel = fake.channels[fake.channel_id] if index == 0 else fake.add_channel("images", guild_id=gid)
        mod = fake.add_member(name=f"mod{index}", permissions=MEMBER_PERMISSIONS | Perm.MANAGE_GUILD, guild_id=gid)
        people = []
        for number in range(members):
            member = fake.add_member(name=f"m{index}-{number}", permissions=MEMBER_PERMISSIONS, guild_id=gid)
            if rng.random() < 0.2:
                fake.closed_dms.add(int(member["user"]["id"]))
            people.append(member)
        world.append(Server(gid, channel, mod, people))
    return world


@dataclass
class Driver:
    """Sends the members' requests, clicks Cancel, pauses and resumes servers."""

    fake: FakeDiscord
    world: list[Server]
    rng: random.Random
    seed: int
    requests: list[Request] = field(default_factory=list)
    cancels: list[SentInteraction] = field(default_factory=list)
    moderation: list[SentInteraction] = field(default_factory=list)  # /budget pause and resume
    actions: Counter[str] = field(default_factory=Counter)
    _resumes: set[asyncio.Task[None]] = field(default_factory=set)

    async def step(self) -> None:
        """One action of the plan: mostly a request, sometimes a Cancel click or a pause."""
        x = self.rng.random()
        if x < 0.64:
            await self.imagine(count=1)
        elif x < 0.89:
            await self.imagine(count=self.rng.randint(2, 4))
        elif x < 0.985:
            await self.cancel_one()
        else:
            await self.pause_one()

    async def imagine(self, *, count: int) -> None:
        server = self.rng.choice(self.world)
        member = self.rng.choice(server.members)
        model = self.rng.choice(MODELS)
        number = len(self.requests) + 1
        prompt = f"soak {self.seed}-{number}: {self.rng.choice(SUBJECTS)}"
        options: dict[str, Any] = {"prompt": prompt, "model": model, "seed": self.rng.randrange(1, 2**31)}
        private = self.rng.random() < 0.15
        if private:
            options["private"] = True
        if count > 1:
            options["count"] = count
        it = await self._send("imagine", options, user=member, channel=server.channel)
        if it is None:
            return
        self.actions["group" if count > 1 else "single"] += 1
        uid = int(member["user"]["id"])
        self.requests.append(Request(number, it, server.guild_id, uid, prompt, model, count, private))

    async def cancel_one(self) -> None:
        """Click Cancel on a request still showing it (as its member, or now and then as a moderator)."""
        showing = [r for r in self.requests[-40:] if _cancel_id(r.interaction)]
        if not showing:
            return
        request = self.rng.choice(showing)
        custom_id = _cancel_id(request.interaction)
        server = next(s for s in self.world if s.guild_id == request.guild_id)
        moderator = self.rng.random() < 0.2 and not request.private  # others cannot see an ephemeral message
        clicker = server.moderator if moderator else request.user_id
        with contextlib.suppress(ValueError, RuntimeError, ConnectionError):  # gone, loading, or the gateway is down
            self.cancels.append(await self.fake.click(request.interaction.original_message_id, custom_id, user=clicker))
            self.actions["cancel"] += 1

    async def pause_one(self) -> None:
        """A moderator pauses a running server; it is resumed 1-3 s later."""
        running = [s for s in self.world if not s.paused]
        if not running:
            return
        server = self.rng.choice(running)
        if await self._moderate(server, "pause") is None:
            return
        server.paused = True
        task = asyncio.create_task(self._resume_later(server, self.rng.uniform(1.0, 3.0)))
        self._resumes.add(task)
        task.add_done_callback(self._resumes.discard)

    async def _resume_later(self, server: Server, after: float) -> None:
        await asyncio.sleep(after)  # how long the moderator keeps it paused (the plan), not a sync
        if await self._moderate(server, "resume") is not None:
            server.paused = False

    async def resume_all(self) -> None:
        """After the faults: resume every server a moderator may have left paused."""
        for task in list(self._resumes):
            task.cancel()
        for server in self.world:
            await self._moderate(server, "resume")
            server.paused = False

    async def _moderate(self, server: Server, action: str) -> SentInteraction | None:
        it = await self._send("budget", {}, user=server.moderator, channel=server.channel, subcommand=action)
        if it is not None:
            self.moderation.append(it)
            self.actions[action] += 1
        return it

    async def _send(self, name: str, options: dict[str, Any], **kwargs: Any) -> SentInteraction | None:
        """Dispatch a command once the gateway is up (a member cannot use a bot that is offline)."""
        for _attempt in range(3):
            await self.fake.wait_until_connected(timeout=120)
            try:
                return await self.fake.slash(name, options, **kwargs)
            except (RuntimeError, ConnectionError):  # the gateway went down between the check and the dispatch
                continue
        return None


def _cancel_id(it: SentInteraction) -> str | None:
    message = it.original_message
    if not message or message["flags"] & 128:  # loading (deferred)
        return None
    for row in message.get("components") or []:
        for component in row.get("components") or []:
            custom_id = component.get("custom_id") or ""
            if custom_id.startswith("fluxcord:cancel:") and not component.get("disabled"):
                return custom_id
    return None
