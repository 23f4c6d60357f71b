"""Helpers shared by the tests and the benchmarks (neither is shipped; ``bench/`` imports this module):
bounded waits, a Mosquitto of one's own on a free loopback port, a publisher, a hard kill."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, every: float = 0.05, message: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds.

    This waits for the machine to finish work (a commit, a tick), never for a rule's time window:
    those are moved by the injected clock.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str:
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def mosquitto_version() -> str:
    try:
        out = subprocess.run([mosquitto_binary(), "-h"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(r"mosquitto version (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


class PrivateMosquitto:
    """Mosquitto from the repo's ``config/mosquitto.conf`` (copied, plus a listener on a free loopback port and
    a persistence directory of its own), stopped with SIGTERM so it saves its persistence file. With ``users``
    (name -> password) it starts from ``config/mosquitto-auth.conf`` with a password file of them."""

    def __init__(self, workdir: Path, port: int | None = None, users: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.config = workdir / "mosquitto.conf"
        data = workdir / "mosquitto-data"
        data.mkdir(parents=True, exist_ok=True)
        base = (ROOT / "config" / ("mosquitto-auth.conf" if users else "mosquitto.conf")).read_text()
        # Started as root, Mosquitto drops to the `mosquitto` user, which cannot write the persistence file
        # into the caller's folder; `user` keeps it as whoever runs it (ignored when not root).
        user = pwd.getpwuid(os.geteuid()).pw_name
        extra = ""
        if users:
            passwords = workdir / "mosquitto.passwd"
            passwords.touch(mode=0o600)
            for name, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), name, password], check=True,
                               capture_output=True, timeout=30)
            extra = f"password_file {passwords}\n"
        self.config.write_text(f"{base}\nlistener {self.port} 127.0.0.1\npersistence_location {data}/\nuser {user}\n"
                               f"{extra}")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> PrivateMosquitto:
        log = open(self.workdir / "mosquitto.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(self.config)], stdout=log, stderr=log)
        wait_for(self._accepts, timeout=timeout, message=f"mosquitto on port {self.port} "
                                                         f"(see {self.workdir}/mosquitto.log)")
        return self

    def _accepts(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {self.process.returncode}; see {self.workdir}/mosquitto.log")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # saves the persistence file on the way out
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class TestPublisher:
    """A QoS 1 publisher for tests."""

    __test__ = False

    def __init__(self, port: int = 1883, protocol: int = mqtt.MQTTv311, client_id: str = "",
                 username: str | None = None, password: str | None = None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        if username:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str, retain: bool = False, wait: bool = True) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if wait:
            info.wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
