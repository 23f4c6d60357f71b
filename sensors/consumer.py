"""The MQTT consumer: the only module that touches paho for ingest.

paho's callbacks never raise and never do I/O: ``on_message`` converts the delivery to a
:class:`RawMessage` and appends it to the inbox; when ``receive_maximum`` messages wait there (MQTT 3.1.1
has no Receive Maximum, so a broker may send a whole backlog), it waits for the dispatcher to take a batch,
so memory stays bounded. A dispatcher thread takes batches from the queue, converts them and
hands each batch, split by device, to ``db_workers`` writer threads (each with its own database
connection; a device always goes to the same writer, so its messages are recorded in the order they
arrived). A writer records its share of a batch in one transaction and commits. The PUBACKs
(``manual_ack``) are sent only after that: a batch is acknowledged once every share of it is committed
and every earlier batch is acknowledged, so PUBACKs leave in the order the messages came. The dispatcher
converts the next batch while the writers commit. A crash loses nothing: the broker redelivers whatever
was not acknowledged (QoS 1, persistent session), and the redelivery is recognised. Acknowledgements are
only sent on the connection that received the message: a packet id means nothing on the next connection.
"""

from __future__ import annotations

import collections
import gc
import logging
import queue
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from alerts.clock import Clock
from alerts.metrics import Metrics
from alerts.observations import Observation, Quarantined
from alerts.recording import BatchResult, IngestPolicy, record_batch
from alerts.service import IngestHealth
from config.settings import MqttSettings
from sensors.ingest import Converted, RawMessage, Skipped, convert
from sensors.topics import subscription

log = logging.getLogger(__name__)

SETTLE_SECONDS = 0.5  # quiet time after a (re)connect before the backlog counts as drained
_PUBACK = struct.Struct("!BBH")  # fixed header (PUBACK, remaining length 2) and the packet id
_PUBACK_COMMAND = 0x40
SHARES_AHEAD = 2  # shares of batches a writer may have waiting: the dispatcher converts ahead of it


@dataclass(slots=True)  # never changed once built; not frozen: paho's thread builds one per message
class _Delivery:
    raw: RawMessage
    generation: int
    received: float  # monotonic


@dataclass
class _Batch:
    """A batch as received: acknowledged, in order, once every writer's share of it is committed."""

    deliveries: list[_Delivery]
    received: float  # monotonic, of its first message
    remaining: int = 0  # shares not yet committed


@dataclass
class _Share:
    """One writer's part of a batch: deliveries with what they converted to, in receive order."""

    batch: _Batch
    items: list[tuple[_Delivery, Converted]] = field(default_factory=list)


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
        # received, not yet taken into a batch: paho's thread appends, the dispatcher takes (a deque and an
        # event cost paho's thread less per message than a queue.Queue)
        self._inbox: collections.deque[_Delivery] = collections.deque()
        self._arrived = threading.Event()
        # MQTT 3.1.1 has no Receive Maximum: a broker may send a whole backlog at once. Past this many
        # received and not yet batched, paho's thread waits in on_message (it stops reading the socket, so
        # the broker holds the rest): memory stays bounded whatever the backlog.
        self._inbox_limit = max(settings.receive_maximum, settings.batch_size)
        self._room = threading.Event()
        self._room.set()
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
        self._count_lock = threading.Lock()
        self._pending: collections.deque[_Batch] = collections.deque()  # dispatched, not yet acknowledged
        self._ack_lock = threading.Lock()
        self._local = threading.local()  # each writer thread's database connection
        self._client = self._make_client()
        self._worker = threading.Thread(target=self._work, name=f"ingest-{self.client_id}", daemon=True)
        self._shares: list[queue.Queue[_Share]] = [queue.Queue(maxsize=SHARES_AHEAD)
                                                   for _ in range(settings.db_workers)]
        self._writers = [threading.Thread(target=self._write, args=(shares,), daemon=True,
                                          name=f"ingest-{self.client_id}-db{i}")
                         for i, shares in enumerate(self._shares)]

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        # What the process holds by now (modules, the ORM's and the settings' objects) lives as long as it:
        # moved out of the cyclic collector's reach, so the full collections that a stream of messages
        # triggers no longer walk it. Measured on a 100,000-message backlog: a quarter of the consumer
        # process's CPU went to those collections (paho's thread and the writer pay them).
        gc.freeze()
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
        for writer in self._writers:
            writer.start()
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self._worker.join(timeout=10)
        for writer in self._writers:
            writer.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()

    def health(self, now: datetime) -> IngestHealth:
        """Called by the tick with its ``now``: the first tick that sees the consumer cut off dates it."""
        with self._lock:
            if not self._connected and self._disconnected_since is None:
                self._disconnected_since = now
            connected, caught_up, since = self._connected, self._caught_up, self._disconnected_since
        return IngestHealth(connected=connected, caught_up=caught_up,
                            disconnected_since=None if connected else since, name=self.client_id,
                            lag_seconds=self.lag_seconds())

    def lag_seconds(self) -> float:
        """How far behind ingest is (real time): the age of the oldest message received and not yet
        committed (queued or in a batch being written), 0 when none waits; while messages wait, this is
        also the time without a commit that would have taken them. Sets ``shouwang_ingest_lag_seconds``."""
        now = time.monotonic()
        oldest = self._oldest_pending
        try:
            queued = self._inbox[0].received if self._inbox else None
        except IndexError:  # taken meanwhile
            queued = None
        waiting = [t for t in (oldest, queued) if t is not None]
        lag = max(0.0, now - min(waiting)) if waiting else 0.0
        self.metrics.ingest_lag.set(round(lag, 3))
        return lag

    def status(self) -> dict[str, Any]:
        oldest = self._oldest_pending
        lag = time.monotonic() - oldest if oldest is not None else 0.0
        return {"connected": self._connected, "caught_up": self._caught_up, "queue": len(self._inbox),
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
            names = [subscription(route.topic, self.settings.share_group) for route in self.settings.routes]
            if self.settings.protocol == "5":
                client.subscribe([(name, SubscribeOptions(qos=1)) for name in names])
            else:
                client.subscribe([(name, 1) for name in names])
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
            # positional (topic, payload, qos, retain, dup, mid): paho's thread pays for every keyword
            raw = RawMessage(topic, bytes(message.payload), message.qos, bool(message.retain), bool(message.dup),
                             message.mid)
            inbox = self._inbox
            inbox.append(_Delivery(raw, self._generation, time.monotonic()))
            if not self._arrived.is_set():
                self._arrived.set()
            if len(inbox) >= self._inbox_limit:
                self._room.clear()
                while len(inbox) >= self._inbox_limit and not self._stop.is_set():
                    self._room.wait(0.1)
        except Exception:
            log.exception("could not queue a message")

    # -- the dispatcher: batch, convert, split by device -----------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            deliveries = self._take_batch()
            if not deliveries:
                self._maybe_caught_up()
                continue
            batch = _Batch(deliveries, deliveries[0].received)
            shares = self._split(batch)
            with self._ack_lock:
                batch.remaining = len(shares)
                self._pending.append(batch)
                self._oldest_pending = self._pending[0].received
            if not shares:  # nothing to store (only skipped messages): acknowledged in its turn
                self._release_acks()
            for index, share in shares.items():
                while not self._stop.is_set():
                    try:
                        self._shares[index].put(share, timeout=0.1)
                        break
                    except queue.Full:
                        continue
            self.metrics.ingest_queue.set(len(self._inbox))

    def _split(self, batch: _Batch) -> dict[int, _Share]:
        """Convert each delivery; give it to the writer of its device (skipped ones need no writer)."""
        writers = len(self._shares)
        shares: dict[int, _Share] = {}
        for delivery in batch.deliveries:
            item = self._convert(delivery.raw)
            if isinstance(item, Skipped):
                self.metrics.skipped.labels(item.reason).inc()
                continue
            device = item.device if isinstance(item, Observation) else item.device or item.topic
            index = zlib.crc32(device.encode("utf-8", "replace")) % writers if writers > 1 else 0
            share = shares.get(index)
            if share is None:
                share = shares[index] = _Share(batch)
            share.items.append((delivery, item))
        return shares

    def _convert(self, raw: RawMessage) -> Converted:
        try:
            return convert(raw, self.settings.routes, self.zone, self.settings.max_payload_bytes)
        except Exception as exc:  # a bug in conversion quarantines the message, never stops the consumer
            log.exception("could not convert a message", extra={"topic": raw.topic})
            return Quarantined(raw.topic, raw.payload, "parser_error", f"{type(exc).__name__}: {exc}"[:2000],
                               "", None, raw.dup)

    def _wait_for_message(self, timeout: float) -> bool:
        """Until the inbox holds a message (True) or ``timeout`` passes (False). The event is cleared before
        the inbox is looked at, and paho's thread appends before it sets the event: no wake-up is lost."""
        if self._inbox:
            return True
        self._arrived.clear()
        if self._inbox:
            return True
        return self._arrived.wait(timeout) and bool(self._inbox)

    def _take_batch(self) -> list[_Delivery]:
        if not self._wait_for_message(0.1):
            return []
        inbox, size = self._inbox, self.settings.batch_size
        batch: list[_Delivery] = []
        deadline = time.monotonic() + self.settings.batch_wait.total_seconds()
        while len(batch) < size:
            try:
                batch.append(inbox.popleft())
                continue
            except IndexError:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._wait_for_message(remaining):
                break
        if not self._room.is_set():
            self._room.set()
        return batch

    def _maybe_caught_up(self) -> None:
        with self._lock:
            if self._connected and not self._caught_up and not self._inbox and not self._pending \
                    and time.monotonic() - self._connected_at >= SETTLE_SECONDS:
                self._caught_up = True
                log.info("ingest caught up with the broker's backlog")

    # -- the writers: record, commit; then the batch's acknowledgements, in order -----------------
    def _write(self, shares: queue.Queue[_Share]) -> None:
        try:
            while not self._stop.is_set():
                try:
                    share = shares.get(timeout=0.1)
                except queue.Empty:
                    continue
                if not self._commit_with_retry(share.items):
                    return  # stopping: the share stays unacknowledged, the broker redelivers it
                with self._ack_lock:
                    share.batch.remaining -= 1
                self._release_acks()
        finally:
            self._drop_connection()

    def _session(self) -> Session:
        """A session on this writer thread's own connection, kept from batch to batch: no pool checkout and
        no liveness ping per batch (a ping is a round trip, and each round trip is a wait for the GIL
        against paho's thread and the dispatcher). A failed batch drops the connection: the next one
        checks out a fresh one (pinged)."""
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed or connection.invalidated:
            connection = self._local.connection = self.engine.connect()
        return Session(bind=connection)

    def _drop_connection(self) -> None:
        connection: Connection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken: nothing to give back
                log.debug("could not close a writer's connection", exc_info=True)

    def _commit_with_retry(self, items: list[tuple[_Delivery, Converted]]) -> bool:
        delay = 0.2
        while not self._stop.is_set():
            try:
                self._commit(items)
                self._db_ok = True
                return True
            except OperationalError:
                self._db_ok = False
                self.metrics.batch_errors.inc()
                log.exception("database unreachable; retrying the batch", extra={"size": len(items)})
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            except DBAPIError:
                # not the connection: some message in the batch breaks a constraint. Store them one by
                # one so one bad message is quarantined instead of stalling the stream.
                self.metrics.batch_errors.inc()
                log.exception("batch failed; storing its messages one by one", extra={"size": len(items)})
                return all(self._commit_single_or_quarantine(item) for item in items)
        return False

    def _commit(self, items: list[tuple[_Delivery, Converted]]) -> None:
        now = self.clock.now()
        observations = [item for _, item in items if isinstance(item, Observation)]
        quarantined = [item for _, item in items if isinstance(item, Quarantined)]
        started = time.perf_counter()
        try:
            with self._session() as session, session.begin():
                result = record_batch(session, observations, quarantined, now, self.policy)
        except Exception:
            self._drop_connection()
            raise
        self.metrics.batch_commit.observe(time.perf_counter() - started)
        self._count(result)

    def _commit_single_or_quarantine(self, item: tuple[_Delivery, Converted]) -> bool:
        delay = 0.2
        while not self._stop.is_set():
            try:
                self._commit([item])
                return True
            except OperationalError:
                self._db_ok = False
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            except DBAPIError as exc:
                raw = item[0].raw
                log.error("message quarantined: it cannot be stored", extra={"topic": raw.topic, "error": str(exc)})
                held = Quarantined(raw.topic, raw.payload, "store_error", f"{type(exc).__name__}: {exc}"[:2000],
                                   "", None, raw.dup)
                try:
                    with self._session() as session, session.begin():
                        result = record_batch(session, [], [held], self.clock.now(), self.policy)
                except OperationalError:
                    self._drop_connection()
                    self._db_ok = False
                    self._stop.wait(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                self._count(result)
                return True
        return False

    def _release_acks(self) -> None:
        """Acknowledge the batches at the head of the line whose shares are all committed."""
        with self._ack_lock:
            while self._pending and self._pending[0].remaining == 0:
                deliveries = self._pending.popleft().deliveries
                self._ack(deliveries)
                self.metrics.messages.inc(len(deliveries))
            self._oldest_pending = self._pending[0].received if self._pending else None

    def _ack(self, batch: list[_Delivery]) -> None:
        """PUBACK each message of ``batch`` received on the current connection, in order. The PUBACKs
        are queued on paho's connection as one write (paho's ``ack`` costs a wake-up and a socket write
        per message); the bytes are those ``ack`` sends, one PUBACK after the other."""
        generation = self._generation
        mids = [d.raw.mid for d in batch if d.raw.qos == 1 and d.generation == generation]
        others = [d for d in batch if d.raw.qos > 1 and d.generation == generation]
        if mids:
            queue_packet = getattr(self._client, "_packet_queue", None)
            if queue_packet is None:
                for mid in mids:
                    self._client.ack(mid, 1)
            else:
                queue_packet(_PUBACK_COMMAND, b"".join([_PUBACK.pack(_PUBACK_COMMAND, 2, mid) for mid in mids]), 0, 1)
        for delivery in others:
            self._client.ack(delivery.raw.mid, delivery.raw.qos)

    def _count(self, result: BatchResult) -> None:
        with self._count_lock:
            self.committed += result.stored
        for kind, count in result.kinds.items():
            self.metrics.events_in.labels(kind).inc(count)
        for topic, reason, detail in result.rejected:
            log.warning("message quarantined", extra={"topic": topic, "reason": reason, "detail": detail})
        for reason, count in result.quarantined.items():
            self.metrics.quarantined.labels(reason).inc(count)
            if count > len(result.rejected):
                log.warning("messages quarantined", extra={"reason": reason, "count": count})
        if result.quarantine_dropped:
            self.metrics.quarantine_dropped.inc(result.quarantine_dropped)
            log.warning("quarantine full for some sources this hour: messages counted, not kept",
                        extra={"count": result.quarantine_dropped})
        self.metrics.duplicates.inc(result.duplicates)
        self.metrics.clock_skew.inc(result.clock_skew)
        if result.panic_alarms:
            self.metrics.alarms_raised.labels("panic").inc(len(result.panic_alarms))
            log.warning("panic alarm raised", extra={"alarms": result.panic_alarms})
        if result.clock_skew_alarms:
            self.metrics.alarms_raised.labels("clock_skew").inc(len(result.clock_skew_alarms))
            log.warning("device clock runs ahead: listed for maintenance", extra={"alarms": result.clock_skew_alarms})
