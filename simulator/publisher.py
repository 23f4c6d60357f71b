"""Publishes a timeline of messages to a real MQTT broker as a clock passes their instants.

``run`` follows the clock (the demo: a shared fast clock); ``publish_until`` publishes everything up
to an instant and returns (tests step a timeline this way). Talks only to the broker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from config.clocks import Clock

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, host: str, port: int, client_id: str = "shouwang-simulator",
                 protocol: str = "3.1.1") -> None:
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311)
        self._client.max_queued_messages_set(0)
        self._client.max_inflight_messages_set(100)
        self.host, self.port = host, port
        self.published = 0
        self._pending: tuple[datetime, str, bytes] | None = None
        self._stop = threading.Event()

    def connect(self) -> None:
        self._client.connect(self.host, self.port, keepalive=30)
        self._client.loop_start()

    def close(self) -> None:
        self._stop.set()
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, wait: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if wait:
            info.wait_for_publish(timeout=10)
        self.published += 1

    def publish_until(self, messages: Iterator[tuple[datetime, str, bytes]], until: datetime) -> int:
        """Publish every message of ``messages`` up to ``until`` (inclusive); keeps the first later one."""
        count = 0
        while True:
            item = self._pending or next(messages, None)
            self._pending = None
            if item is None:
                return count
            if item[0] > until:
                self._pending = item
                return count
            self.publish(item[1], item[2], wait=True)
            count += 1

    def run(self, messages: Iterator[tuple[datetime, str, bytes]], clock: Clock, step: float = 0.2) -> None:
        """Follow ``clock`` until :meth:`close`: every ``step`` real seconds, publish what is due."""
        while not self._stop.wait(step):
            try:
                self.publish_until(messages, clock.now())
            except Exception:
                log.exception("simulator publish failed")
