"""Helpers shared by tests: a publisher, a hard kill; waiting (bounded) and a private Mosquitto come from
:mod:`devkit.local`, which the benchmarks share."""

from __future__ import annotations

import os
import signal
import subprocess

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devkit.local import ROOT, PrivateMosquitto, free_port, mosquitto_binary, wait_for

__all__ = ["ROOT", "PrivateMosquitto", "TestPublisher", "free_port", "kill", "mosquitto_binary", "wait_for"]

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
