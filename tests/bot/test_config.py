import enum
from pathlib import Path
from typing import Literal

import pytest

from bot.config import (
    Period,
    RefundPolicy,
    Settings,
    SettingsError,
    _env_name,
    env_file_warnings,
    env_names,
    load_settings,
)
from bot.models import offered_models

REQUIRED = {"DISCORD_TOKEN": "discord-secret", "BFL_API_KEY": "bfl-secret"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No stray settings from the machine, and no .env in the working directory."""
    import os

    for name in list(os.environ):
        if name.upper() in env_names():
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_missing_token_names_the_variable():
    with pytest.raises(SettingsError, match=r"^DISCORD_TOKEN is required"):
        load_settings()


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "x" * 10)
    with pytest.raises(SettingsError, match=r"^BFL_API_KEY is required"):
        load_settings()


def test_defaults_and_secrets(monkeypatch):
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.bfl_api_url == "https://api.bfl.ai"
    assert settings.discord_api_url == "https://discord.com/api/v10"
    assert settings.discord_cdn_url is None  # Discord's own CDN hosts (and DISCORD_API_URL's host)
    assert settings.dev_guild_id is None
    assert settings.bot_budget_period is Period.MONTH
    assert settings.refund_policy is RefundPolicy.ERRORS
    assert "discord-secret" not in repr(settings) and "bfl-secret" not in repr(settings)


def test_usd_settings_become_micro_dollars(monkeypatch):
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BOT_BUDGET_USD", "12.34")
    monkeypatch.setenv("DEFAULT_MEMBER_DAILY_USD", "0.1")
    settings = load_settings()
    assert settings.bot_budget_micros == 12_340_000
    assert settings.default_member_daily_budget_micros == 100_000


@pytest.mark.parametrize(
    ("name", "value"),
    [("BOT_BUDGET_USD", "-5"), ("DEV_GUILD_ID", "abc"), ("BFL_API_URL", "not a url"), ("REFUND_POLICY", "sometimes")],
)
def test_invalid_setting_is_one_line_naming_it(monkeypatch, name, value):
    for key, secret in REQUIRED.items():
        monkeypatch.setenv(key, secret)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"{name} is invalid")
    assert "\n" not in message


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("DISCORD_TOKEN=from-dotenv\nBFL_API_KEY=also-from-dotenv\nDEV_GUILD_ID=42\n")
    settings = load_settings()
    assert settings.discord_token.get_secret_value() == "from-dotenv"
    assert settings.dev_guild_id == 42


def test_env_example_documents_every_setting():
    example = (Path(__file__).parents[2] / ".env.example").read_text()
    for field in Settings.model_fields:
        assert f"{_env_name(field)}=" in example, _env_name(field)


# --- .env.example as shipped, empty values, ranges ---------------------------------------------------
EXAMPLE = Path(__file__).parents[2] / ".env.example"


def filled_example(tmp_path, **values):
    """`.env.example` copied to ``tmp_path/.env`` with the two secrets (and ``values``) filled in."""
    values = {"DISCORD_TOKEN": "discord-secret", "BFL_API_KEY": "bfl-secret", **values}
    lines = []
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        name = line.partition("=")[0]
        lines.append(f"{name}={values.pop(name)}" if not line.startswith("#") and name in values else line)
    lines += [f"{name}={value}" for name, value in values.items()]
    (tmp_path / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_env_example_as_shipped_starts_with_the_two_secrets_filled_in(tmp_path):
    filled_example(tmp_path)
    settings = load_settings()
    assert settings.discord_token.get_secret_value() == "discord-secret"
    assert settings.dev_guild_id is None  # shipped as `DEV_GUILD_ID=`
    assert settings.cache_dir == Path("data") / "cache"  # shipped as `CACHE_DIR=`: beside the database
    assert settings == Settings(_env_file=None, discord_token="discord-secret", bfl_api_key="bfl-secret")
    assert env_file_warnings(tmp_path / ".env") == []


OPTIONAL = [name for name in env_names() if name not in REQUIRED]


@pytest.mark.parametrize("name", OPTIONAL)
def test_an_empty_value_means_not_set_for_every_optional_setting(tmp_path, monkeypatch, name):
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN=t0ken-value\nBFL_API_KEY=key-value\n{name}=\n")
    from_file = load_settings()
    # The same in the environment (`docker run -e NAME=`), with no .env at all.
    monkeypatch.setenv(name, "")
    monkeypatch.setenv("DISCORD_TOKEN", "t0ken-value")
    monkeypatch.setenv("BFL_API_KEY", "key-value")
    from_env = load_settings(_env_file=None)
    default = Settings(_env_file=None, discord_token="t0ken-value", bfl_api_key="key-value")
    assert from_file == default and from_env == default


def test_empty_secret_is_still_required(tmp_path):
    filled_example(tmp_path, DISCORD_TOKEN="")
    with pytest.raises(SettingsError, match=r"^DISCORD_TOKEN is required"):
        load_settings()


def _example_comment(name):
    """The comment lines just above ``NAME=`` in .env.example."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{name}="))
    block = []
    for line in reversed(lines[:index]):
        if not line.startswith("#"):
            break
        block.insert(0, line.lstrip("# "))
    return " ".join(block)


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_env_example_gives_every_settings_accepted_range(field):
    import typing

    from annotated_types import Ge, Gt, Le

    info = Settings.model_fields[field]
    comment = _example_comment(_env_name(field))
    assert "Accepted:" in comment, _env_name(field)
    accepted = comment.partition("Accepted:")[2]
    bounds = {type(m): m for m in info.metadata if isinstance(m, Ge | Le | Gt)}
    if field.endswith("_micros"):
        assert "0 to 100000 dollars" in accepted
    elif Ge in bounds and Le in bounds:
        assert f"{bounds[Ge].ge} to {bounds[Le].le}" in accepted, accepted
    annotation = info.annotation
    choices = typing.get_args(annotation) if typing.get_origin(annotation) is Literal else ()
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        choices = [member.value for member in annotation]
    for choice in choices:
        assert str(choice) in accepted, (field, choice)
    if field == "default_model":
        assert all(spec.key in accepted for spec in offered_models())  # not a button-only route (Sharpen's)
    if info.default is not None and not info.is_required() and not field.endswith("_micros"):
        shown = info.default.value if isinstance(info.default, enum.Enum) else info.default
        assert f"Default: {shown}" in comment, field


# --- the state lives beside the database ----------------------------------------------------------
def test_cache_dir_defaults_to_a_cache_folder_beside_the_database(monkeypatch):
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_PATH", "/data/fluxcord.sqlite3")
    assert load_settings().cache_dir == Path("/data/cache")
    monkeypatch.setenv("CACHE_DIR", "/var/cache/fluxcord")
    assert load_settings().cache_dir == Path("/var/cache/fluxcord")


# --- URLs, models, dollar amounts -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("BFL_API_URL", "htps://api.bfl.ai", "must start with https:// or http:// (it has `htps://`)"),
        ("BFL_API_URL", "api.bfl.ai", "must start with https:// or http://"),
        ("BFL_API_URL", "https://", "must name a host"),
        ("BFL_API_URL", "https://api.bfl.ai:port", "must be a URL"),
        ("DISCORD_API_URL", "wss://discord.com/api/v10", "must start with https:// or http://"),
        ("DISCORD_GATEWAY_URL", "https://gateway.discord.gg/", "must start with wss:// or ws://"),
        ("DISCORD_CDN_URL", "cdn.example", "must start with https:// or http://"),
        ("DISCORD_CDN_URL", "https://cdn.example/a?b=1", "must not have a query or fragment"),
    ],
)
def test_url_settings_must_be_urls_with_the_right_scheme(monkeypatch, name, value, reason):
    for key, secret in REQUIRED.items():
        monkeypatch.setenv(key, secret)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith(f"{name} is invalid: {reason}")


@pytest.mark.parametrize(
    ("name", "value"),
    [("BFL_API_URL", "http://127.0.0.1:8080/"), ("DISCORD_GATEWAY_URL", "ws://localhost:1234/gateway")],
)
def test_local_test_server_urls_are_accepted(monkeypatch, name, value):
    for key, secret in REQUIRED.items():
        monkeypatch.setenv(key, secret)
    monkeypatch.setenv(name, value)
    assert getattr(load_settings(), name.lower()) == (value.rstrip("/") if name == "BFL_API_URL" else value)


def test_unknown_default_model_is_refused_listing_the_valid_ones(monkeypatch):
    for key, secret in REQUIRED.items():
        monkeypatch.setenv(key, secret)
    monkeypatch.setenv("DEFAULT_MODEL", "flux-2-klien-4b")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("DEFAULT_MODEL is invalid: `flux-2-klien-4b` is not a model; use one of: ")
    assert all(spec.key in message for spec in offered_models()) and "deblur" not in message
    monkeypatch.setenv("DEFAULT_MODEL", "flux-2-klein-4b")
    assert load_settings().default_model == "flux-2-klein-4b"


@pytest.mark.parametrize("value", ["1,50", "2,5", "0,04"])
def test_a_decimal_comma_in_a_dollar_setting_is_refused_not_read_as_cents(monkeypatch, value):
    for key, secret in REQUIRED.items():
        monkeypatch.setenv(key, secret)
    monkeypatch.setenv("DEFAULT_MEMBER_DAILY_USD", value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith(
        f"DEFAULT_MEMBER_DAILY_USD is invalid: use a dot for cents: {value.replace(',', '.')}"
    )


def test_thousands_separators_in_dollar_settings(monkeypatch):
    for key, secret in REQUIRED.items():
        monkeypatch.setenv(key, secret)
    monkeypatch.setenv("BOT_BUDGET_USD", "$1,000")
    monkeypatch.setenv("DEFAULT_SERVER_DAILY_USD", "1,000.50")
    settings = load_settings()
    assert settings.bot_budget_micros == 1_000_000_000
    assert settings.default_server_daily_budget_micros == 1_000_500_000


# --- keys in .env that are not settings -------------------------------------------------------------
def test_unknown_env_file_key_is_named_with_the_closest_setting(tmp_path):
    filled_example(tmp_path, BOT_BUDGET="20", CACHEDIR="/tmp/x", SOMETHING_ELSE="1", log_level="debug")
    warnings = env_file_warnings(tmp_path / ".env")
    assert len(warnings) == 3, warnings
    assert "BOT_BUDGET is not a setting and is ignored; did you mean BOT_BUDGET_USD?" in warnings[0]
    assert "CACHEDIR is not a setting and is ignored; did you mean CACHE_DIR?" in warnings[1]
    assert "SOMETHING_ELSE is not a setting" in warnings[2] and "did you mean" not in warnings[2]
    assert load_settings().log_level == "DEBUG"  # keys are case-insensitive, so log_level is known


def test_no_env_file_no_warnings(tmp_path):
    assert env_file_warnings(tmp_path / ".env") == []
