"""The MQTT consumer: the only module that touches paho for ingest.

paho's callbacks never raise and never do I/O: ``on_message`` converts the delivery to a
:class:`RawMessage` and queues it. A worker thread takes batches from the queue, records them in one
transaction, commits, and only then sends the PUBACKs (``manual_ack``), so a crash loses nothing: the
broker redelivers whatever was not acknowledged (QoS 1, persistent session), and the redelivery is
recognised. Acknowledgements are only sent on the connection that received the message: a packet id
means nothing on the next connection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from alerts.clock import Clock
from alerts.metrics import Metrics
from alerts.observations import Observation, Quarantined
from alerts.recording import BatchResult, IngestPolicy, record_batch
from alerts.service import IngestHealth
from config.settings import MqttSettings
from sensors.ingest import RawMessage, Skipped, convert
from sensors.topics import subscription

log = logging.getLogger(__name__)

SETTLE_SECONDS = 0.5  # quiet time after a (re)connect before the backlog counts as drained


@dataclass(frozen=True)
class _Delivery:
    raw: RawMessage
    generation: int
    received: float  # monotonic


class Consumer:
    def __init__(self, settings: MqttSettings, engine: Engine, clock: Clock, policy: IngestPolicy,
                 zone: tzinfo, metrics: Metrics, client_id: str | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.policy = policy
        self.zone = zone
        self.metrics = metrics
        self.client_id = client_id or settings.client_id
        self._queue: queue.Queue[_Delivery] = queue.Queue()
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = False
        self._connected_at = 0.0
        self._caught_up = False
        self._disconnected_since: datetime | None = None
        self._ever_connected = False
        self._stop = threading.Event()
        self._oldest_pending: float | None = None
        self._db_ok = True
        self.committed = 0
        self._client = self._make_client()
        self._worker = threading.Thread(target=self._work, name=f"ingest-{self.client_id}", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        v5 = self.settings.protocol == "5"
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = int(self.settings.session_expiry.total_seconds())
            properties.ReceiveMaximum = self.settings.receive_maximum
        self._client.connect_async(
            self.settings.host, self.settings.port, keepalive=self.settings.keepalive,
            clean_start=False if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY, properties=properties,
        )
        self._client.loop_start()
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self._worker.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()

    def health(self, now: datetime) -> IngestHealth:
        """Called by the tick with its ``now``: the first tick that sees the consumer cut off dates it."""
        with self._lock:
            if not self._connected and self._disconnected_since is None:
                self._disconnected_since = now
            return IngestHealth(connected=self._connected, caught_up=self._caught_up,
                                disconnected_since=None if self._connected else self._disconnected_since,
                                name=self.client_id)

    def status(self) -> dict[str, Any]:
        oldest = self._oldest_pending
        lag = time.monotonic() - oldest if oldest is not None else 0.0
        return {"connected": self._connected, "caught_up": self._caught_up, "queue": self._queue.qsize(),
                "lag_seconds": round(lag, 3), "database_ok": self._db_ok, "committed": self.committed,
                "client_id": self.client_id, "broker": self.settings.url}

    # -- paho callbacks: never raise, never block ------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        v5 = self.settings.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False, manual_ack=True,
        )
        if self.settings.username:
            client.username_pw_set(self.settings.username, self.settings.password)
        client.max_inflight_messages_set(max(20, self.settings.receive_maximum))
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        try:
            if reason.is_failure:
                log.error("broker refused the connection", extra={"reason": str(reason)})
                return
            with self._lock:
                self._generation += 1
                self._connected = True
                self._connected_at = time.monotonic()
                self._caught_up = False
                self._disconnected_since = None
                self._ever_connected = True
            self.metrics.broker_connected.set(1)
            options = SubscribeOptions(qos=1) if self.settings.protocol == "5" else 1
            topics = [(subscription(route.topic, self.settings.share_group), options)
                      for route in self.settings.routes]
            client.subscribe(topics)
            log.info("connected to broker", extra={"broker": self.settings.url, "client_id": self.client_id})
        except Exception:
            log.exception("on_connect failed")

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        with self._lock:
            self._connected = False
            self._caught_up = False
        self.metrics.broker_connected.set(0)
        if not self._stop.is_set():
            log.warning("disconnected from broker", extra={"reason": str(reason)})

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message._topic.decode("utf-8", "replace")  # .topic raises on invalid UTF-8
            raw = RawMessage(topic=topic, payload=bytes(message.payload), qos=message.qos,
                             retain=bool(message.retain), dup=bool(message.dup), mid=message.mid)
            self._queue.put(_Delivery(raw, self._generation, time.monotonic()))
        except Exception:
            log.exception("could not queue a message")

    # -- the worker: batch, commit, then acknowledge ----------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if not batch:
                self._maybe_caught_up()
                continue
            self._oldest_pending = batch[0].received
            self._commit_with_retry(batch)
            self._oldest_pending = None
            self.metrics.ingest_queue.set(self._queue.qsize())

    def _take_batch(self) -> list[_Delivery]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_wait.total_seconds()
        while len(batch) < self.settings.batch_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _maybe_caught_up(self) -> None:
        with self._lock:
            if self._connected and not self._caught_up and self._queue.empty() \
                    and time.monotonic() - self._connected_at >= SETTLE_SECONDS:
                self._caught_up = True
                log.info("ingest caught up with the broker's backlog")

    def _commit_with_retry(self, batch: list[_Delivery]) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                self._commit(batch)
                self._db_ok = True
                return
            except OperationalError:
                self._db_ok = False
                self.metrics.batch_errors.inc()
                log.exception("database unreachable; retrying the batch", extra={"size": len(batch)})
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            except DBAPIError:
                # not the connection: some message in the batch breaks a constraint. Store them one by
                # one so one bad message is quarantined instead of stalling the stream.
                self.metrics.batch_errors.inc()
                log.exception("batch failed; storing its messages one by one", extra={"size": len(batch)})
                for delivery in batch:
                    self._commit_single_or_quarantine(delivery)
                return

    def _commit(self, batch: list[_Delivery]) -> None:
        now = self.clock.now()
        observations: list[Observation] = []
        quarantined: list[Quarantined] = []
        for delivery in batch:
            item = convert(delivery.raw, self.settings.routes, self.zone, self.settings.max_payload_bytes)
            if isinstance(item, Observation):
                observations.append(item)
            elif isinstance(item, Quarantined):
                quarantined.append(item)
            elif isinstance(item, Skipped):
                self.metrics.skipped.labels(item.reason).inc()
        started = time.perf_counter()
        with Session(self.engine) as session, session.begin():
            result = record_batch(session, observations, quarantined, now, self.policy)
        self.metrics.batch_commit.observe(time.perf_counter() - started)
        self._ack(batch)
        self._count(result, len(batch))

    def _commit_single_or_quarantine(self, delivery: _Delivery) -> None:
        try:
            self._commit([delivery])
        except DBAPIError as exc:
            raw = delivery.raw
            log.error("message quarantined: it cannot be stored", extra={"topic": raw.topic, "error": str(exc)})
            item = Quarantined(raw.topic, raw.payload, "store_error", f"{type(exc).__name__}: {exc}"[:2000],
                               "", None, raw.dup)
            with Session(self.engine) as session, session.begin():
                record_batch(session, [], [item], self.clock.now(), self.policy)
            self._ack([delivery])

    def _ack(self, batch: list[_Delivery]) -> None:
        generation = self._generation
        for delivery in batch:
            if delivery.raw.qos > 0 and delivery.generation == generation:
                self._client.ack(delivery.raw.mid, delivery.raw.qos)

    def _count(self, result: BatchResult, received: int) -> None:
        self.committed += result.stored
        self.metrics.messages.inc(received)
        for kind, count in result.kinds.items():
            self.metrics.events_in.labels(kind).inc(count)
        for reason, count in result.quarantined.items():
            self.metrics.quarantined.labels(reason).inc(count)
            log.warning("messages quarantined", extra={"reason": reason, "count": count})
        self.metrics.duplicates.inc(result.duplicates)
        self.metrics.clock_skew.inc(result.clock_skew)
        if result.panic_alarms:
            self.metrics.alarms_raised.labels("panic").inc(len(result.panic_alarms))
            log.warning("panic alarm raised", extra={"alarms": result.panic_alarms})
