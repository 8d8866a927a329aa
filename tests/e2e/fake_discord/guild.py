"""The guild model of the fake Discord: roles, users, members, channels, permissions."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Iterable
from typing import Any

from tests.e2e.fake_discord.constants import Intents, Perm, _now_iso, snowflake
from tests.e2e.fake_discord.helpers import _snowflake_of
from tests.e2e.fake_discord.records import UploadedFile


class GuildModelMixin:
    """Part of :class:`FakeDiscord` (a mixin); see the module docstring."""

    # ------------------------------------------------------------------ guild model

    @staticmethod
    def _role_payload(role_id: int, name: str, permissions: int, position: int, **extra: Any) -> dict[str, Any]:
        return {
            "id": str(role_id),
            "name": name,
            "description": None,
            "permissions": str(permissions),
            "position": position,
            "color": extra.get("color", 0),
            "colors": {"primary_color": extra.get("color", 0), "secondary_color": None, "tertiary_color": None},
            "hoist": extra.get("hoist", False),
            "managed": extra.get("managed", False),
            "mentionable": extra.get("mentionable", False),
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }

    def add_role(
        self,
        name: str,
        permissions: int = 0,
        *,
        color: int = 0,
        hoist: bool = False,
        mentionable: bool = False,
        managed: bool = False,
        guild_id: int | None = None,
    ) -> int:
        """Create a guild role and return its id (send GUILD_CREATE again, or add before the bot connects).

        ``guild_id``: a server made with :meth:`add_guild` (default: the fake's own).
        """
        role_id = snowflake()
        gid = self._known_guild(guild_id)
        if gid != self.guild_id:
            self._role_guild[role_id] = gid
        self.roles[role_id] = self._role_payload(
            role_id,
            name,
            permissions,
            len(self.roles),
            color=color,
            hoist=hoist,
            mentionable=mentionable,
            managed=managed,
        )
        self._queue_event("GUILD_ROLE_CREATE", {"guild_id": str(gid), "role": self.roles[role_id]})
        return role_id

    def add_guild(self, name: str, *, guild_id: int | None = None) -> int:
        """Another server the bot is in, with its own ``@everyone`` role (id = the server's id); its id.

        Give it channels and members with ``add_channel(..., guild_id=)`` / ``add_member(..., guild_id=)``;
        interactions sent in its channels carry its id. A server added after the bot connected is
        announced with GUILD_CREATE before the next dispatched interaction.
        """
        gid = guild_id or snowflake()
        self.extra_guilds[gid] = name
        self.roles[gid] = self._role_payload(gid, "@everyone", Perm.DEFAULT_EVERYONE, 0)
        self._role_guild[gid] = gid
        if any(c.session is not None for c in self._connections):
            self._pending_events.append(("GUILD_CREATE", {"__guild__": gid}, None))
        return gid

    @property
    def guild_ids(self) -> list[int]:
        """Every server the bot is in: the fake's own first, then those of :meth:`add_guild`."""
        return [self.guild_id, *self.extra_guilds]

    def _known_guild(self, guild_id: int | None) -> int:
        if guild_id is None:
            return self.guild_id
        if guild_id not in self.guild_ids:
            raise KeyError(f"unknown guild {guild_id} (add it with add_guild)")
        return guild_id

    def guild_of_member(self, user_id: int) -> int:
        """The server a member belongs to."""
        return self._member_guild.get(user_id, self.guild_id)

    def add_user(self, name: str, *, user_id: int | None = None, bot: bool = False) -> dict[str, Any]:
        """Create a user (not a guild member by itself) and return its Discord user object."""
        uid = user_id or snowflake()
        user = {
            "id": str(uid),
            "username": name,
            "global_name": None if bot else name.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
            "system": False,
            "banner": None,
            "accent_color": None,
            "public_flags": 0,
            "flags": 0,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
        }
        self.users[uid] = user
        return user

    def add_member(
        self,
        user_id: int | None = None,
        *,
        name: str | None = None,
        roles: Iterable[int] = (),
        permissions: int | None = None,
        bot: bool = False,
        nick: str | None = None,
        guild_id: int | None = None,
    ) -> dict[str, Any]:
        """Add a guild member and return its member dict (``{"user", "roles", "flags", "joined_at", ...}``).

        ``permissions`` (if given) is used verbatim in interaction payloads instead of the value computed
        from ``@everyone`` and ``roles`` (ADMINISTRATOR or guild ownership otherwise mean all bits).
        """
        uid = user_id or snowflake()
        gid = self._known_guild(guild_id)
        user = self.users.get(uid) or self.add_user(name or f"user{len(self.users)}", user_id=uid, bot=bot)
        for role in roles:
            if int(role) not in self.roles:
                raise KeyError(f"unknown role {role}")
        member = {
            "user": user,
            "roles": [str(r) for r in roles],
            "nick": nick,
            "avatar": None,
            "banner": None,
            "flags": 0,
            "joined_at": _now_iso(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "communication_disabled_until": None,
        }
        self.members[uid] = member
        if gid != self.guild_id:
            self._member_guild[uid] = gid
        if permissions is not None:
            self._explicit_permissions[uid] = permissions
        self._queue_event("GUILD_MEMBER_ADD", {**member, "guild_id": str(gid)}, Intents.GUILD_MEMBERS)
        return member

    def add_channel(
        self,
        name: str,
        *,
        channel_id: int | None = None,
        type: int = 0,
        nsfw: bool = False,
        topic: str | None = None,
        guild_id: int | None = None,
    ) -> dict[str, Any]:
        """Add a guild channel (default: text channel) and return its channel dict."""
        cid = channel_id or snowflake()
        channel = {
            "id": str(cid),
            "type": type,
            "guild_id": str(self._known_guild(guild_id)),
            "name": name,
            "position": len(self.channels),
            "permission_overwrites": [],
            "nsfw": nsfw,
            "topic": topic,
            "parent_id": None,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
        }
        self.channels[cid] = channel
        self._queue_event("CHANNEL_CREATE", channel)
        return channel

    def member_permissions(self, member: Any) -> int:
        """Guild permissions of a member (explicit override, owner, ADMINISTRATOR, or OR of roles)."""
        uid = _snowflake_of(member, "member")
        if uid in self._explicit_permissions:
            return self._explicit_permissions[uid]
        if uid == getattr(self, "owner_id", None):
            return Perm.ALL
        m = self.members.get(uid)
        if m is None:
            return 0
        bits = int(self.roles[self.guild_of_member(uid)]["permissions"])
        for rid in m["roles"]:
            role = self.roles.get(int(rid))
            if role:
                bits |= int(role["permissions"])
        return Perm.ALL if bits & Perm.ADMINISTRATOR else bits

    @property
    def bot_permissions(self) -> int:
        """The bot's permissions (``app_permissions`` in interactions)."""
        return self.member_permissions(self.application_id)

    def dm_channel(self, user: Any) -> dict[str, Any]:
        """The DM channel between the bot and ``user`` (created on first use)."""
        uid = _snowflake_of(user, "user")
        if uid not in self.users:
            raise KeyError(f"unknown user {uid}")
        if uid not in self._dm_channels:
            cid = snowflake()
            self.channels[cid] = {
                "id": str(cid),
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [self._public_user(uid)],
            }
            self._dm_channels[uid] = cid
        return self.channels[self._dm_channels[uid]]

    def make_attachment(
        self, filename: str, data: bytes, content_type: str | None = None, *, description: str | None = None
    ) -> dict[str, Any]:
        """Store a user upload (for attachment options) and return its Discord attachment object."""
        return self._store_attachment(
            self.channel_id,
            UploadedFile(filename, data, content_type or "application/octet-stream"),
            filename=filename,
            description=description,
            ephemeral=True,
        )

    def _public_user(self, uid: int) -> dict[str, Any]:
        return copy.deepcopy(self.users[uid])

    def _guild_payload(self, intents: int, guild_id: int | None = None) -> dict[str, Any]:
        gid = guild_id or self.guild_id
        # Without the privileged members intent Discord sends only the bot's own member.
        members = [self.bot_member]
        if intents & Intents.GUILD_MEMBERS:
            members = [
                m for uid, m in self.members.items() if uid == self.application_id or self.guild_of_member(uid) == gid
            ]
        channels = [c for c in self.channels.values() if c["type"] != 1 and c.get("guild_id") == str(gid)]
        roles = [r for rid, r in self.roles.items() if self._role_guild.get(rid, self.guild_id) == gid]
        if gid != self.guild_id:
            roles.append(self.roles[self.bot_role_id])  # the bot's managed role, in every server
        return {
            "id": str(gid),
            "name": self.guild_name if gid == self.guild_id else self.extra_guilds[gid],
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "features": [],
            "system_channel_id": str(self.channel_id) if gid == self.guild_id else None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "application_id": None,
            "joined_at": self.bot_member["joined_at"],
            "large": False,
            "unavailable": False,
            "lazy": True,
            "member_count": len(members) if intents & Intents.GUILD_MEMBERS else self._member_count(gid),
            "members": copy.deepcopy(members),
            "channels": copy.deepcopy(channels),
            "roles": copy.deepcopy(roles),
            "emojis": [],
            "stickers": [],
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _member_count(self, gid: int) -> int:
        return sum(1 for uid in self.members if uid == self.application_id or self.guild_of_member(uid) == gid)

    @contextlib.asynccontextmanager
    async def run_bot(self, bot: Any, *, timeout: float = 5.0) -> AsyncIterator[Any]:
        """Run a discord.py client against the fake until the block exits::

            async with fake.run_bot(MyBot(...)) as bot:   # logged in, synced, READY
                ...

        Uses ``async with bot`` + ``bot.start(fake.token)``, waits for ``wait_until_ready()`` (raising
        the start-up error, e.g. ``LoginFailure``, if ``start`` fails first), and closes the bot on exit.
        The caller must already have pointed discord.py at the fake (``discord_endpoints`` fixture).
        """
        async with bot:
            task = asyncio.create_task(bot.start(self.token), name="fake-discord-bot")
            ready = asyncio.create_task(bot.wait_until_ready())
            done, _ = await asyncio.wait({task, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if ready not in done:
                ready.cancel()
                if task in done:
                    task.result()  # re-raise the start-up error
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise TimeoutError(f"bot did not become ready within {timeout}s\n{self.summary()}")
            try:
                yield bot
            finally:
                await bot.close()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
