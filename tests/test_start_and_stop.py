"""Start, stop and first steps, as a newcomer meets them: the commands in real subprocesses.

One Ctrl+C (SIGINT) or SIGTERM stops `demo` and `serve` within seconds, with a screen's event stream open,
without a traceback, and `serve` says goodbye to the broker (an MQTT DISCONNECT); a port in use is
refused before anything is printed; `clock set` on a fresh database works; `load` before `clock set`
says what it did; the demo's tokens are readable by their owner only; `demo --help` says what it does;
the SMS-link key outlives a restart and is shared by the processes of one database."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy.orm import Session

from alerts.db import make_engine
from api import accounts
from simulator.homes import to_toml
from simulator.scenario import shipped_scenarios
from tests.harness import T0, Site, sqlite_database
from tests.helpers import ROOT, PrivateMosquitto, free_port, wait_for
from tests.processes import ProcessGroup, serve_settings

STOPPED_WITHIN_S = 20  # a bound for the test, not a measurement: the stop itself takes a few seconds


def shouwang(*args: str, config: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOUWANG_")}
    command = [sys.executable, "-m", "api.cli", *(["--config", str(config)] if config else []), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def open_stream(url: str, token: str) -> threading.Event:
    """A screen's event stream, held open in a thread; the event is set once the first event arrived."""
    opened = threading.Event()

    def hold() -> None:
        for _attempt in range(100):  # the server may not listen yet
            try:
                with httpx.stream("GET", url + "/api/stream", headers={"Authorization": f"Bearer {token}"},
                                  timeout=httpx.Timeout(5, read=None)) as response:
                    for _line in response.iter_lines():
                        opened.set()
            except httpx.HTTPError:
                pass  # not up yet, or gone away (what the test wants)
            if opened.is_set():
                return
            time.sleep(0.2)

    threading.Thread(target=hold, daemon=True).start()
    wait_for(opened.is_set, timeout=20, message="the event stream open")
    return opened


# -- 12: Ctrl+C and SIGTERM ------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_demo_stops_on_one_signal_with_a_stream_open_and_no_traceback(tmp_path: Path, sig: int) -> None:
    port = free_port()
    log_path = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOUWANG_")}
    with open(log_path, "wb") as log:
        demo = subprocess.Popen([sys.executable, "-m", "api.cli", "demo", "--homes", "4", "--port", str(port),
                                 "--data", str(tmp_path / "data")], cwd=ROOT, env=env, stdout=log, stderr=log)
    tokens = tmp_path / "data" / "tokens.json"
    try:
        wait_for(lambda: "按Ctrl+C停止" in log_path.read_text(errors="replace"), timeout=90, message="the demo")
        # 16: the tokens and the worker's PIN are the owner's alone
        assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
        open_stream(f"http://127.0.0.1:{port}", json.loads(tokens.read_text())["screen"])
        demo.send_signal(sig)
        code = demo.wait(timeout=STOPPED_WITHIN_S)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    output = log_path.read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_stops_on_one_signal_with_a_stream_open_and_says_goodbye_to_the_broker(
        tmp_path: Path, topic_base: str, sig: int) -> None:
    broker = PrivateMosquitto(tmp_path)
    broker.config.write_text(broker.config.read_text() + "log_type notice\nconnection_messages true\n")
    broker.start()
    database = sqlite_database(tmp_path, "serve.db")
    engine = make_engine(database)
    with Session(engine) as session, session.begin():
        token = accounts.screen_token(session, T0, timedelta(days=1))
    engine.dispose()
    try:
        with ProcessGroup(tmp_path, extra_logs=(tmp_path / "mosquitto.log",)) as group:
            serve = group.serve("a", serve_settings(database, broker.url, topic_base), client_id="bye-test",
                                api=True).start()
            serve.wait_connected()
            open_stream(f"http://127.0.0.1:{serve.api_port}", token)
            serve.ended_on_purpose = True
            assert serve.process is not None
            serve.process.send_signal(sig)
            code = serve.process.wait(timeout=STOPPED_WITHIN_S)
            output = serve.log()
            assert code == 0, output[-3000:]
            assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
            wait_for(lambda: "Client bye-test disconnected" in (tmp_path / "mosquitto.log").read_text(),
                     timeout=10, message="the MQTT DISCONNECT of serve")
    finally:
        broker.stop()


# -- 13: a port in use ----------------------------------------------------------------------------------
def test_the_demo_refuses_a_port_in_use_before_printing_any_url(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = shouwang("demo", "--homes", "2", "--port", str(port), "--data", str(tmp_path / "data"))
    assert result.returncode == 2
    assert f"端口{port}已被占用" in result.stderr and "--port" in result.stderr  # notify.language: zh by default
    assert "http://" not in result.stdout and "Errno" not in result.stderr + result.stdout
    assert not (tmp_path / "data").exists(), "nothing was touched"


# -- 14: the clock on a fresh database, and load before clock set -------------------------------------------
def manual_config(tmp_path: Path) -> Path:
    config = tmp_path / "shouwang.toml"
    config.write_text(to_toml({"database": {"url": f"sqlite:///{tmp_path / 'fresh.db'}"},
                                  "clock": {"mode": "manual"}}), encoding="utf-8")
    return config


def test_clock_set_on_a_fresh_database_works(tmp_path: Path) -> None:
    config = manual_config(tmp_path)
    result = shouwang("clock", "set", "2026-11-23T08:00:00+08:00", config=config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2026-11-23T00:00:00+00:00"
    assert shouwang("clock", "advance", "90m", config=config).stdout.strip() == "2026-11-23T01:30:00+00:00"
    assert "Traceback" not in result.stderr


def test_load_before_clock_set_says_from_when_the_residents_are_watched(tmp_path: Path) -> None:
    config = manual_config(tmp_path)
    community = tmp_path / "community.toml"
    community.write_text(to_toml({
        "community": {"name": "夷陵社区"}, "grids": [{"name": "第一网格", "micro_grids": [{"name": "1号楼"}]}],
        "residents": [{"ref": "r1", "name": "王秀英", "micro_grid": "第一网格/1号楼"}]}), encoding="utf-8")
    first = shouwang("load", str(community), config=config)
    assert first.returncode == 0, first.stderr
    assert "手动时钟从未设置" in first.stderr and "2026-01-01T00:00:00+00:00" in first.stderr
    shouwang("clock", "set", "2026-11-23T08:00:00+08:00", config=config)
    again = shouwang("load", str(community), config=config)
    assert again.returncode == 0 and "手动时钟从未设置" not in again.stderr


# -- 16: the SMS-link key ----------------------------------------------------------------------------------
def test_an_unset_secret_key_is_generated_once_and_shared_by_every_process(
        make_site: Callable[..., Site], caplog: pytest.LogCaptureFixture) -> None:
    keys = []
    with caplog.at_level(logging.WARNING):
        for process in ("a", "b", "a"):  # a, another process, a restarted
            site = make_site(process=process)
            keys.append(site.runtime.secret_key)
            site.close()
    assert len(set(keys)) == 1 and len(keys[0]) >= 32
    assert not [r for r in caplog.records if "secret_key" in r.getMessage()]


def test_processes_with_different_secret_keys_are_warned(make_site: Callable[..., Site],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        for process, key in (("a", "one key of enough length"), ("b", "one key of enough length")):
            make_site(process=process, api={"secret_key": key}).close()
        assert not [r for r in caplog.records if "differs between processes" in r.getMessage()]
        make_site(process="c", api={"secret_key": "another key, also long"}).close()
    warned = [r for r in caplog.records if "differs between processes" in r.getMessage()]
    assert len(warned) == 1 and warned[0].__dict__["other_processes"] == ["a", "b"]


# -- 17: demo --help -----------------------------------------------------------------------------------------
def test_demo_help_warns_about_data_shows_defaults_and_lists_the_scenarios() -> None:
    text = " ".join(shouwang("demo", "--help").stdout.split())
    assert "DELETED" in text and "(default: data/demo)" in text and "(default: 122)" in text
    assert "--seed" in text and "same seed gives the same community" in text
    for name in shipped_scenarios():
        assert name in text


# -- 15: the metrics are documented ---------------------------------------------------------------------------
def test_every_prometheus_metric_is_documented() -> None:
    from alerts.metrics import Metrics

    documented = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    names = {metric.name for metric in Metrics().registry.collect()}
    missing = sorted(n for n in names if n not in documented and f"{n}_total" not in documented)
    assert names and not missing, missing
