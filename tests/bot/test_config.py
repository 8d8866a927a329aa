import pytest

from bot.config import Period, RefundPolicy, SettingsError, load_settings

REQUIRED = {"DISCORD_TOKEN": "discord-secret", "BFL_API_KEY": "bfl-secret"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No stray settings from the machine, and no .env in the working directory."""
    import os

    for name in list(os.environ):
        if name.startswith(("DISCORD_", "BFL_", "DATABASE_", "DEV_", "BOT_", "DEFAULT_", "MEMBER_", "REFUND_")):
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
    from pathlib import Path

    from bot.config import Settings, _env_name

    example = (Path(__file__).parents[2] / ".env.example").read_text()
    for field in Settings.model_fields:
        assert f"{_env_name(field)}=" in example, _env_name(field)
