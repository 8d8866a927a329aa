"""Application commands: building option payloads the way Discord's client does, sync rules."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from tests.e2e.fake_discord.helpers import _snowflake_of

if TYPE_CHECKING:
    from tests.e2e.fake_discord.server import FakeDiscord


# --------------------------------------------------------------------------------------------------
# option building


class _OptionBuilder:
    """Builds ``data.options`` and ``data.resolved`` from friendly values and synced definitions."""

    _INFER: tuple[tuple[type, int], ...] = ((bool, 5), (int, 4), (float, 10), (str, 3))

    def __init__(
        self, fake: FakeDiscord, resolved: dict[str, dict[str, Any]], *, strict: bool, focused: str | None
    ) -> None:
        self.fake = fake
        self.resolved = resolved
        self.strict = strict
        self.focused = focused

    def build_command(
        self,
        name: str,
        defs: list[dict[str, Any]] | None,
        options: dict[str, Any] | list[dict[str, Any]] | None,
        subcommand: str | None,
        subcommand_group: str | None,
    ) -> list[dict[str, Any]]:
        if isinstance(options, list):
            return copy.deepcopy(options)
        values = dict(options or {})
        path = name
        if subcommand_group is not None:
            group = self._child(defs, subcommand_group, 2, path)
            sub_name = subcommand or ""
            sub = self._child(group.get("options") if group else None, sub_name, 1, f"{path} {subcommand_group}")
            inner = self.build(sub.get("options") if sub else None, values, f"{path} {subcommand_group} {sub_name}")
            return [{"type": 2, "name": subcommand_group, "options": [{"type": 1, "name": sub_name, "options": inner}]}]
        if subcommand is not None:
            sub = self._child(defs, subcommand, 1, path)
            inner = self.build(sub.get("options") if sub else None, values, f"{path} {subcommand}")
            return [{"type": 1, "name": subcommand, "options": inner}]
        if defs and any(d.get("type") in (1, 2) for d in defs):
            raise ValueError(f"/{name} has subcommands; pass subcommand= (and subcommand_group=)")
        return self.build(defs, values, path)

    @staticmethod
    def _child(defs: list[dict[str, Any]] | None, name: str, kind: int, path: str) -> dict[str, Any] | None:
        if defs is None:
            return None
        for d in defs:
            if d.get("name") == name and d.get("type") == kind:
                return d
        raise ValueError(f"/{path} has no {'group' if kind == 2 else 'subcommand'} {name!r}")

    def build(self, defs: list[dict[str, Any]] | None, values: dict[str, Any], path: str) -> list[dict[str, Any]]:
        by_name = {d["name"]: d for d in defs or []} if defs is not None else None
        out = []
        for name, value in values.items():
            definition = by_name.get(name) if by_name is not None else None
            if by_name is not None and definition is None:
                raise ValueError(f"/{path} has no option {name!r} (options: {sorted(by_name)})")
            kind = definition["type"] if definition is not None else self._infer(value)
            out.append(self.value(kind, value, definition, name))
        if by_name is not None and self.strict and self.focused is None:
            missing = [d["name"] for d in defs or [] if d.get("required") and d["name"] not in values]
            if missing:
                raise ValueError(f"/{path} is missing required option(s) {missing}")
        return out

    def _infer(self, value: Any) -> int:
        for py_type, kind in self._INFER:
            if isinstance(value, py_type):
                return kind
        if isinstance(value, dict) and "user" in value:
            return 6
        if isinstance(value, tuple | bytes) or (isinstance(value, dict) and "filename" in value):
            return 11
        raise ValueError(f"cannot infer the option type of {value!r} for an unsynced command")

    def value(self, kind: int, value: Any, definition: dict[str, Any] | None, name: str) -> dict[str, Any]:
        option: dict[str, Any] = {"name": name, "type": kind}
        if self.focused == name:
            option |= {"value": str(value), "focused": True}
            return option
        if kind in (3, 4, 5, 10):
            self._check_scalar(kind, value, definition, name)
            option["value"] = value
        elif kind == 6:
            option["value"] = self._user(value)
        elif kind == 7:
            option["value"] = self._channel(value, definition)
        elif kind == 8:
            option["value"] = self._role(value)
        elif kind == 9:
            ident = _snowflake_of(value, name)
            option["value"] = self._role(ident) if ident in self.fake.roles else self._user(ident)
        elif kind == 11:
            option["value"] = self._attachment(value)
        else:
            raise ValueError(f"option {name!r} has unsupported type {kind}")
        return option

    def _check_scalar(self, kind: int, value: Any, definition: dict[str, Any] | None, name: str) -> None:
        if not self.strict:
            return
        ok = {
            3: isinstance(value, str),
            4: isinstance(value, int) and not isinstance(value, bool),
            5: isinstance(value, bool),
            10: isinstance(value, int | float) and not isinstance(value, bool),
        }[kind]
        if not ok:
            raise ValueError(f"option {name!r} (type {kind}) got {value!r}")
        if definition is None:
            return
        choices = definition.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise ValueError(f"option {name!r}: {value!r} is not one of {[c['value'] for c in choices]}")
        if kind == 3:
            if len(value) < definition.get("min_length", 0) or len(value) > definition.get("max_length", 6000):
                raise ValueError(f"option {name!r}: length {len(value)} outside min_length/max_length")
        elif kind in (4, 10):
            lo, hi = definition.get("min_value"), definition.get("max_value")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ValueError(f"option {name!r}: {value} outside [{lo}, {hi}]")

    def _user(self, value: Any) -> str:
        uid = _snowflake_of(value, "user option")
        if uid not in self.fake.users:
            raise ValueError(f"unknown user {uid} (add it with add_member/add_user)")
        self.resolved.setdefault("users", {})[str(uid)] = self.fake._public_user(uid)
        if uid in self.fake.members:
            member = copy.deepcopy(self.fake.members[uid])
            member.pop("user")
            member["permissions"] = str(self.fake.member_permissions(uid))
            self.resolved.setdefault("members", {})[str(uid)] = member
        return str(uid)

    def _role(self, value: Any) -> str:
        rid = _snowflake_of(value, "role option")
        if rid not in self.fake.roles:
            raise ValueError(f"unknown role {rid}")
        self.resolved.setdefault("roles", {})[str(rid)] = copy.deepcopy(self.fake.roles[rid])
        return str(rid)

    def _channel(self, value: Any, definition: dict[str, Any] | None) -> str:
        cid = _snowflake_of(value, "channel option")
        channel = self.fake.channels.get(cid)
        if channel is None:
            raise ValueError(f"unknown channel {cid}")
        allowed_types = (definition or {}).get("channel_types")
        if self.strict and allowed_types and channel["type"] not in allowed_types:
            raise ValueError(f"channel {cid} (type {channel['type']}) not in channel_types {allowed_types}")
        self.resolved.setdefault("channels", {})[str(cid)] = {
            "id": channel["id"],
            "type": channel["type"],
            "name": channel.get("name"),
            "guild_id": channel.get("guild_id"),
            "parent_id": channel.get("parent_id"),
            "nsfw": channel.get("nsfw", False),
            "flags": 0,
            "permissions": str(self.fake.bot_permissions),
        }
        return channel["id"]

    def _attachment(self, value: Any) -> str:
        if isinstance(value, bytes):
            value = ("upload.bin", value)
        if isinstance(value, tuple):
            value = self.fake.make_attachment(*value)
        if not isinstance(value, dict) or "id" not in value:
            raise ValueError(f"attachment option needs make_attachment() or (filename, bytes), got {value!r}")
        self.resolved.setdefault("attachments", {})[value["id"]] = copy.deepcopy(value)
        return value["id"]


def _command_sync_errors(commands: list[Any]) -> list[tuple[tuple[Any, ...], str, str]]:
    """Rules Discord applies to a bulk overwrite that the schema cannot express."""
    problems: list[tuple[tuple[Any, ...], str, str]] = []
    seen: set[tuple[str, int]] = set()
    for i, cmd in enumerate(commands):
        if not isinstance(cmd, dict) or not isinstance(cmd.get("name"), str):
            continue
        key = (cmd["name"], cmd.get("type") or 1)
        if key in seen:
            problems.append(((i, "name"), "APPLICATION_COMMAND_ALREADY_EXISTS", f"duplicate command {key[0]!r}"))
        seen.add(key)

        def check(options: Any, path: tuple[Any, ...]) -> None:
            if not isinstance(options, list):
                return
            optional_seen = False
            names: set[str] = set()
            for j, opt in enumerate(options):
                if not isinstance(opt, dict):
                    continue
                if opt.get("name") in names:
                    problems.append(((*path, j, "name"), "APPLICATION_COMMAND_OPTION_NAME_DUPLICATE", "duplicate"))
                names.add(opt.get("name"))
                if opt.get("type") in (1, 2):
                    check(opt.get("options"), (*path, j, "options"))
                    continue
                if opt.get("required"):
                    if optional_seen:
                        problems.append(
                            (
                                (*path, j, "required"),
                                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                                "Required options must be placed before non-required options",
                            )
                        )
                else:
                    optional_seen = True

        check(cmd.get("options"), (i, "options"))
    return problems


def _option_response(option: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in option.items() if v is not None}
    out.setdefault("description", "")
    if "options" in out:
        out["options"] = [_option_response(o) for o in out["options"]]
    return out
