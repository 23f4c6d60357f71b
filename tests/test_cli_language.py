"""What the ``shouwang`` command prints follows ``notify.language`` (Chinese by default), run as a real
subprocess: its refusals, a bad community file (``load``), a file that is not there or not TOML, the lines
it reports, and the settings' own error (in the language the config file still names). A bad community file
reaches the CSV import's reader worded too. Every code the command and the settings name is in the table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alerts.refusals import REFUSALS, worded
from alerts.registry import csv_import
from alerts.registry.community import CommunityFileError
from simulator.homes import to_toml
from tests.harness import Site
from tests.helpers import ROOT
from tests.test_api_language import COMMUNITY as API_COMMUNITY

COMMUNITY: dict[str, Any] = {
    "community": {"name": "夷陵社区"}, "grids": [{"name": "第一网格", "micro_grids": [{"name": "1号楼"}]}],
    "residents": [{"ref": "r1", "name": "王秀英", "micro_grid": "第一网格/1号楼",
                   "devices": [{"id": "pir-1", "kind": "motion"}]}]}


def shouwang(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOUWANG_")}
    return subprocess.run([sys.executable, "-m", "api.cli", "--config", str(config), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def said(result: subprocess.CompletedProcess[str]) -> str:
    """The command's last line on stderr (the logs of the migrations come before it)."""
    return result.stderr.strip().splitlines()[-1]


def config_file(tmp_path: Path, language: str | None, **more: Any) -> Path:
    config = tmp_path / "shouwang.toml"
    values: dict[str, Any] = {"database": {"url": f"sqlite:///{tmp_path / 'cli.db'}"}, **more}
    if language is not None:
        values["notify"] = {"language": language}
    config.write_text(to_toml(values), encoding="utf-8")
    return config


def test_every_code_the_command_and_the_settings_name_is_in_the_table() -> None:
    used = {code for path in (ROOT / "api" / "cli.py", ROOT / "config" / "settings.py")
            for code in re.findall(r"\"((?:cli|settings)_[a-z_]+|duration)\"", path.read_text(encoding="utf-8"))}
    assert len(used) > 25
    assert sorted(used - set(REFUSALS)) == []
    assert {f"cli_count_{kind}" for kind in ("grids", "micro_grids", "workers", "residents", "devices",
                                               "contacts", "gateways")} <= set(REFUSALS)


@pytest.mark.parametrize("language", [None, "en"])
def test_the_command_refuses_and_reports_in_notify_language(tmp_path: Path, language: str | None) -> None:
    en = language == "en"
    config = config_file(tmp_path, language)
    # a refusal of the command itself
    clock = shouwang("clock", "show", config=config)
    assert clock.returncode == 2 and "Traceback" not in clock.stderr
    assert said(clock) == ("shouwang: the clock command needs clock.mode = 'manual'" if en
                                    else "shouwang: clock命令需要clock.mode = 'manual'")
    # a file that is not there, one that is not TOML
    missing = shouwang("load", str(tmp_path / "nowhere.toml"), config=config)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert ("no such file: " if en else "找不到文件") + repr(str(tmp_path / "nowhere.toml")) in missing.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[community\n", encoding="utf-8")
    not_toml = shouwang("load", str(broken), config=config)
    assert not_toml.returncode == 1
    assert (f"'{broken}' is not valid TOML: " if en else f"文件'{broken}'不是有效的TOML：") in not_toml.stderr
    # a community file the loader refuses: its place and what to do, in the reader's language
    bad = tmp_path / "bad.toml"
    bad.write_text(to_toml({**COMMUNITY, "residents": [{**COMMUNITY["residents"][0], "micro_grid": "1号楼"}]}),
                   encoding="utf-8")
    refused = shouwang("load", str(bad), config=config)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert said(refused) == ("shouwang: no micro-grid '1号楼'; write it as 'grid name/micro-grid name'"
                                      if en else "shouwang: 没有微网格'1号楼'；请写作“网格名/微网格名”")
    room = tmp_path / "room.toml"
    room.write_text(to_toml({**COMMUNITY, "residents": [{**COMMUNITY["residents"][0], "devices": [
        {"id": "pir-1", "kind": "motion", "room": "garage"}]}]}), encoding="utf-8")
    assert said(shouwang("load", str(room), config=config)).startswith(
        "shouwang: device 'pir-1': a room is one of bathroom, " if en
        else "shouwang: 设备'pir-1'：房间只能是卫生间（bathroom）、")
    kind = tmp_path / "kind.toml"
    kind.write_text(to_toml({**COMMUNITY, "residents": [{**COMMUNITY["residents"][0], "devices": [
        {"id": "pir-1", "kind": "radar"}]}], "workers": [{"phone": "+8613800000009", "role": "grid_worker"}]}),
        encoding="utf-8")
    assert said(shouwang("load", str(kind), config=config)) == (
        "shouwang: an entry of the file has no 'name'" if en else "shouwang: 文件中有一项缺少'name'")
    kind.write_text(to_toml({**COMMUNITY, "residents": [{**COMMUNITY["residents"][0], "devices": [
        {"id": "pir-1", "kind": "radar"}]}]}), encoding="utf-8")
    assert said(shouwang("load", str(kind), config=config)).startswith(
        "shouwang: device 'pir-1': unknown device kind 'radar': use motion" if en
        else "shouwang: 设备'pir-1'：未知设备类型'radar'：只能是motion")
    # what it reports
    good = tmp_path / "good.toml"
    good.write_text(to_toml(COMMUNITY), encoding="utf-8")
    loaded = shouwang("load", str(good), config=config)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == (
        "loaded: 1 grids, 1 micro_grids, 0 workers, 1 residents, 1 devices, 0 contacts, 0 gateways" if en
        else "已加载，新建：网格1个、微网格1个、工作人员0名、老人1名、设备1个、联系人0名、网关0个")
    pin = shouwang("pin", "+8613900000000", "1234", config=config)
    assert pin.returncode == 1
    assert said(pin) == ("shouwang: no worker with phone +8613900000000" if en
                                  else "shouwang: 没有手机号为+8613900000000的工作人员")
    user = shouwang("user", "add", "alice", "--role", "operator", "--password", "a long secret", config=config)
    assert user.returncode == 0, user.stderr
    assert user.stdout.strip() == ("user alice (operator) saved" if en else "用户alice（中心值班员）已保存")


@pytest.mark.parametrize("language", [None, "en"])
def test_a_wrong_setting_is_worded_in_the_language_the_file_names(tmp_path: Path, language: str | None) -> None:
    config = config_file(tmp_path, language, rules={"inactivity_window": "soon"}, typo={"x": 1})
    result = shouwang("db", "upgrade", config=config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    if language == "en":
        assert lines[0] == f"shouwang: invalid settings in {config}:"
        assert "  rules.inactivity_window (env SHOUWANG_RULES__INACTIVITY_WINDOW): 'soon' is not a duration" \
            in result.stderr
        assert "  typo (env SHOUWANG_TYPO): unknown setting (a typo?)" in lines
    else:
        assert lines[0] == f"shouwang: 配置文件'{config}'中的设置有误："
        assert "  rules.inactivity_window（环境变量SHOUWANG_RULES__INACTIVITY_WINDOW）：'soon'不是时长：" \
            "请写秒数（3600）或如'90s'、'10m'、'14h'、'90d'" in lines
        assert "  typo（环境变量SHOUWANG_TYPO）：未知设置（拼写错误？）" in lines
    unreadable = shouwang("db", "upgrade", config=tmp_path / "none.toml")  # no file to read a language from
    assert unreadable.returncode == 2 and said(unreadable) == f"shouwang: 找不到配置文件'{tmp_path / 'none.toml'}'"


def test_a_community_file_error_is_english_in_logs_and_worded_for_the_reader() -> None:
    error = CommunityFileError("community_dwell", what=CommunityFileError("community_grid", name="第一网格"),
                               name="bathroom_dwell_hours", value=-1)
    assert str(error) == "grid '第一网格': bathroom_dwell_hours must be a positive number of hours, got -1"
    assert worded(error, "zh") == "网格'第一网格'：bathroom_dwell_hours须为正数（小时），不能是-1"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_community_file_error_behind_the_csv_import_is_worded(make_site: Callable[..., Site], language: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The CSV import checks its lines first; should the loader still refuse, its reason is worded too."""
    api = make_site(community=API_COMMUNITY, **({} if language == "zh" else {"notify": {"language": "en"}})).serve()

    def refuse(*_args: Any, **_kw: Any) -> dict[str, int]:
        raise CommunityFileError("community_no_micro_grid", name="A1")

    monkeypatch.setattr(csv_import, "load_community", refuse)
    response = api.http("admin", "POST", "/api/admin/import/residents", content=b"ref,name\nb1,B\n",
                        headers={"content-type": "text/csv"})
    assert response.status_code == 422, response.text
    reason = response.json()["detail"]["errors"][0]["reason"]
    assert reason == ("没有微网格'A1'；请写作“网格名/微网格名”" if language == "zh"
                      else "no micro-grid 'A1'; write it as 'grid name/micro-grid name'")
