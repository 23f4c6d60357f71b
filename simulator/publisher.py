"""Publishes a timeline of messages to a real MQTT broker (QoS 1). The only simulator module that
touches paho.

``run`` follows a clock (the demo: the shared fast clock); ``publish_until`` publishes everything up
to an instant and returns (tests step a timeline this way); ``publish_at_rate`` is the load mode for
benchmarks: a fixed rate, a bounded count and time, loopback brokers only.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from config.clocks import Clock
from simulator.timeline import Message, Timeline

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Publisher:
    def __init__(self, host: str, port: int, client_id: str = "shouwang-simulator",
                 protocol: str = "3.1.1", username: str | None = None, password: str | None = None) -> None:
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311)
        if username:
            self._client.username_pw_set(username, password)
        self._client.max_queued_messages_set(0)
        self._client.max_inflight_messages_set(100)
        self.host, self.port = host, port
        self.published = 0
        self.retained_topics: set[str] = set()
        self._stop = threading.Event()

    def connect(self) -> None:
        self._client.connect(self.host, self.port, keepalive=30)
        self._client.loop_start()

    def close(self, clear_retained: bool = True) -> None:
        """Disconnect; first clear the retained messages this publisher left on the broker."""
        self._stop.set()
        if clear_retained:
            for topic in sorted(self.retained_topics):
                self._client.publish(topic, b"", qos=1, retain=True).wait_for_publish(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, wait: bool = False) -> mqtt.MQTTMessageInfo:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if retain:
            self.retained_topics.add(topic)
        if wait:
            info.wait_for_publish(timeout=10)
        self.published += 1
        return info

    def send(self, messages: Iterable[Message]) -> int:
        """Publish ``messages`` in order and wait until the broker has acknowledged the last."""
        last: mqtt.MQTTMessageInfo | None = None
        count = 0
        for message in messages:
            last = self.publish(message.topic, message.payload, retain=message.retain)
            count += 1
        if last is not None:
            last.wait_for_publish(timeout=30)
        return count

    def publish_until(self, timeline: Timeline, until: datetime) -> int:
        """Publish every message of ``timeline`` up to ``until`` (inclusive); returns how many."""
        return self.send(timeline.take_until(until))

    def run(self, timeline: Timeline, clock: Clock, step: float = 0.2) -> None:
        """Follow ``clock`` until :meth:`close`: every ``step`` real seconds, publish what is due."""
        while not self._stop.wait(step):
            try:
                self.publish_until(timeline, clock.now())
            except Exception:
                log.exception("simulator publish failed")

    def publish_at_rate(self, messages: Iterator[tuple[str, bytes]], rate: float, *, count: int | None = None,
                        duration: float | None = None) -> tuple[int, float]:
        """Load mode: ``rate`` messages a second until ``count`` messages or ``duration`` seconds, whichever
        comes first. Refused for a broker that is not on this machine. Returns (sent, seconds)."""
        if not is_loopback(self.host):
            raise ValueError(f"load mode publishes only to a broker on this machine (127.0.0.1), not {self.host}")
        if rate <= 0 or (count is None and duration is None):
            raise ValueError("load mode needs a positive rate and a bound: a count, a duration or both")
        started = time.monotonic()
        sent = 0
        last: mqtt.MQTTMessageInfo | None = None
        while (count is None or sent < count) and not self._stop.is_set():
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            due = int(elapsed * rate) + 1 - sent  # messages owed by now
            if due <= 0:
                time.sleep(min(0.01, 1 / rate))
                continue
            for topic, payload in (next(messages) for _ in range(min(due, (count or sent + due) - sent))):
                last = self.publish(topic, payload)
                sent += 1
        if last is not None:
            last.wait_for_publish(timeout=30)
        return sent, time.monotonic() - started
