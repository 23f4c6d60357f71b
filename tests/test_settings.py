"""Settings: defaults, TOML file, environment, *_FILE secrets, and loud failures that say what to fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from api.cli import main
from config.settings import SettingsError, load_settings


def test_defaults() -> None:
    settings = load_settings()
    assert settings.database.url.startswith("sqlite:///")
    assert settings.mqtt.url == "mqtt://127.0.0.1:1883" and settings.mqtt.protocol == "5"
    assert settings.timezone == "Asia/Shanghai" and settings.clock.mode == "system"
    assert settings.rules.inactivity_window == timedelta(hours=14)
    assert settings.rules.early_warning == timedelta(hours=10)
    assert settings.rules.device_offline_after == timedelta(hours=2)
    assert settings.rules.clock_skew == timedelta(minutes=5)
    assert settings.rules.event_retention == timedelta(days=90)
    assert settings.rules.tick == timedelta(seconds=1)


def test_toml_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "s.toml"
    config.write_text('[rules]\ninactivity_window = "12h"\n[mqtt]\nprotocol = "3.1.1"\n')
    monkeypatch.setenv("SHOUWANG_RULES__INACTIVITY_WINDOW", "16h")
    settings = load_settings(config)
    assert settings.rules.inactivity_window == timedelta(hours=16)
    assert settings.mqtt.protocol == "3.1.1"


def test_a_secret_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("SHOUWANG_MQTT__PASSWORD_FILE", str(secret))
    monkeypatch.delenv("SHOUWANG_MQTT__PASSWORD", raising=False)
    assert load_settings().mqtt.password == "s3cret"


@pytest.mark.parametrize(("toml", "says"), [
    ('timezone = "Mars/Olympus"', "unknown time zone"),
    ('[rules]\nearly_warning = "15h"', "early_warning must be shorter"),
    ('[rules]\ninactivity_window = "soon"', "is not a duration"),
    ('[clock]\nmode = "fast"', "needs clock.start"),
    ('[database]\nurl = "mysql://x"', "database url must be"),
    ('[mqtt]\nurl = "http://broker"', "mqtt url must look like"),
    ('[rules]\nwindow = "14h"', "unknown setting"),
])
def test_a_wrong_setting_fails_with_a_message_that_says_what_to_fix(tmp_path: Path, toml: str, says: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(SettingsError, match=says):
        load_settings(config)


def test_the_cli_refuses_to_start_on_a_wrong_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[rules]\ninactivity_window = "soon"')
    assert main(["--config", str(config), "db", "upgrade"]) == 2
    assert "rules.inactivity_window" in capsys.readouterr().err
