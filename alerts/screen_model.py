"""One live screen model per process: the picture every connected screen shows, kept up to date per
change instead of recomputed per screen per second.

Database triggers write every change a screen must show into ``screen_changes`` (a resident's row, their
devices going offline or back, an alarm's transition: migration 0010), whatever process or statement
made it. The model reads what follows its cursor when PostgreSQL wakes it (``LISTEN shouwang_screen``)
or, on SQLite, when its poll of the cursor finds more; it reloads only the residents and alarms named
there and computes which markers, alarms and KPIs changed: a *delta*, numbered by the model's
``version``. Statuses that change by time alone (early warning, the end of an away period) are kept in
a heap of instants. A screen gets the whole picture on connect, then deltas; one that reconnects with a
version the model still holds gets only the deltas it missed.

Per scope (the community, a grid, a micro-grid) the model renders each delta once, for all screens of
that scope. The alarm list of the picture is the ``ALARM_LIST_LIMIT`` most urgent open alarms of the
scope (a district's mass silence opens 100,000: the count is in the KPIs); the KPIs are SQL aggregates.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Engine, Select, delete, false, func, select, true
from sqlalchemy.orm import Session

from alerts import rules
from alerts.background import Background
from alerts.clock import Clock
from alerts.db import changed
from alerts.limits import limits_from
from alerts.models import Alarm, AlarmKind, AlarmState, Device, Grid, MicroGrid, Resident, ScreenChange
from alerts.screen import RESIDENT_ALARMS, SEVERITY_ORDER, _urgency, colour, kpis
from alerts.views import alarm_fields

log = logging.getLogger(__name__)

ALARM_LIST_LIMIT = 200
HISTORY = 600  # deltas kept for screens that reconnect
POLL_SECONDS = 0.5  # SQLite (and a lost LISTEN connection): how often the cursor is read
FULL_RELOAD_EVERY = 600.0  # seconds: a full reload now and then (a grid's window edited, ...)
PRUNE_KEEP = 200_000  # rows of screen_changes kept behind the newest
CHANNEL = "shouwang_screen"

Scope = tuple[str, int | None]  # ("all", None), ("grid", id), ("micro", id), ("none", None)
ALL: Scope = ("all", None)


@dataclass
class _Resident:
    id: int
    name: str
    latitude: float | None
    longitude: float | None
    micro_grid_id: int | None
    grid_id: int | None
    last_activity_at: datetime | None
    watch_from: datetime | None
    away_until: datetime | None
    away_until_activity: bool
    limits: rules.Limits


@dataclass
class _Delta:
    version: int
    markers: set[int] = field(default_factory=set)
    removed: set[int] = field(default_factory=set)
    alarms: set[int] = field(default_factory=set)
    system: bool = False
    rendered: dict[Scope, str] = field(default_factory=dict)


@dataclass
class _View:
    """What the screens of one scope were last sent: the top alarms and the KPIs."""

    top: list[int] = field(default_factory=list)
    kpis: dict[str, Any] | None = None


class Subscription:
    """A connected screen: woken (from the model's thread) whenever the version moves."""

    def __init__(self, scope: Scope, loop: asyncio.AbstractEventLoop) -> None:
        self.scope = scope
        self.loop = loop
        self.event = asyncio.Event()

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: the screen is gone
            self.loop.call_soon_threadsafe(self.event.set)


def in_scope(scope: Scope, micro_grid_id: int | None, grid_id: int | None) -> bool:
    kind, ident = scope
    if kind == "all":
        return True
    if kind == "grid":
        return grid_id is not None and grid_id == ident
    if kind == "micro":
        return micro_grid_id is not None and micro_grid_id == ident
    return False


def scope_clause(scope: Scope) -> ColumnElement[bool]:
    """The scope as a WHERE clause on Resident (for the KPIs)."""
    kind, ident = scope
    if kind == "all":
        return true()
    if kind == "grid":
        return Resident.micro_grid_id.in_(select(MicroGrid.id).where(MicroGrid.grid_id == ident))
    if kind == "micro":
        return Resident.micro_grid_id == ident
    return false()


class ScreenModel:
    def __init__(self, engine: Engine, clock: Clock, limits: rules.Limits, zone: tzinfo) -> None:
        self.engine = engine
        self.clock = clock
        self.default_limits = limits
        self.zone = zone
        self.epoch = secrets.token_hex(4)
        self.version = 0
        self.cursor = 0
        self.residents: dict[int, _Resident] = {}
        self.devices: dict[int, list[bool]] = {}
        self.alarms: dict[int, dict[str, Any]] = {}  # every open alarm, as the API shows it
        self.markers: dict[int, dict[str, Any]] = {}
        self.blind = False
        self.views: dict[Scope, _View] = {}
        self.history: deque[_Delta] = deque(maxlen=HISTORY)
        self.subscriptions: set[Subscription] = set()
        self._due: dict[int, datetime] = {}  # resident -> next instant its status changes by time alone
        self._heap: list[tuple[datetime, int]] = []
        self._lock = threading.RLock()
        self._loop = Background("screen-model", self._run)
        self._stop = self._loop.stopping
        self._loaded_at = 0.0
        self.refreshes = 0

    # -- the model's thread -------------------------------------------------------------------------
    def start(self) -> ScreenModel:
        with self._lock:
            if self._loop.thread is None:
                self.refresh()
                self._loop.start()
        return self

    def stop(self) -> None:
        self._loop.stop()

    def _run(self) -> None:
        listener = None
        while not self._stop.is_set():
            try:
                if listener is None and self.engine.dialect.name == "postgresql":
                    listener = self._listen()
                if listener is not None:
                    for _ in listener.notifies(timeout=POLL_SECONDS * 2, stop_after=1):
                        pass
                else:
                    self._stop.wait(POLL_SECONDS)
                if not self._stop.is_set():
                    self.refresh()
            except Exception:  # a lost connection, a failed query: logged, tried again
                log.exception("screen model refresh failed")
                if listener is not None:
                    listener.close()
                    listener = None
                self._stop.wait(1.0)
        if listener is not None:
            listener.close()

    def _listen(self) -> Any:
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = psycopg.connect(url, autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    # -- refresh ------------------------------------------------------------------------------------
    def refresh(self) -> _Delta | None:
        """Read the changes after the cursor, apply them, number a delta if anything a screen shows
        changed. Returns it (None when nothing did)."""
        with self._lock:
            self.refreshes += 1
            now = self.clock.now()
            full = not self._loaded_at or time.monotonic() - self._loaded_at > FULL_RELOAD_EVERY
            with Session(self.engine) as session:
                newest = session.scalar(select(func.max(ScreenChange.id))) or 0
                oldest = session.scalar(select(func.min(ScreenChange.id))) or 0
                if newest < self.cursor or (self.cursor and oldest > self.cursor + 1):
                    full = True  # emptied (a restore) or pruned past this model's cursor: start again
                if not full and newest == self.cursor and not (self._heap and self._heap[0][0] <= now):
                    return None
                delta = _Delta(self.version + 1)
                if full:
                    touched = self._load_all(session, now)
                    self._loaded_at = time.monotonic()
                else:
                    touched = self._load_changes(session, self.cursor, newest, now)
                self.cursor = max(self.cursor, newest)
                touched |= self._due_now(now)
                blind = any(a["kind"] == AlarmKind.SYSTEM for a in self.alarms.values())
                delta.system = blind != self.blind or bool(touched.pop(-1, None))
                if blind != self.blind:
                    self.blind = blind
                    touched |= {rid: True for rid in self.residents}
                for rid in touched:
                    self._marker(rid, now, delta)
                delta.alarms = touched.alarm_ids if isinstance(touched, _Touched) else set()
                for scope, view in self.views.items():
                    self._render(session, scope, view, delta, now)
            if not (delta.markers or delta.removed or delta.alarms or delta.system
                    or any(delta.rendered.values())):
                return None
            self.version = delta.version
            self.history.append(delta)
            for subscription in list(self.subscriptions):
                subscription.wake()
            return delta

    def _load_all(self, session: Session, now: datetime) -> _Touched:
        touched = _Touched()
        old = set(self.residents)
        self.residents, self.devices = {}, {}
        self._read_residents(session, None)
        for rid in old - set(self.residents):
            touched[rid] = True
        touched.update({rid: True for rid in self.residents})
        previous = self.alarms
        self.alarms = {}
        for row in session.execute(_alarm_query().where(Alarm.state != AlarmState.RESOLVED)):
            self.alarms[row.id] = alarm_fields(row, row.resident_name)
        changed = {aid for aid in set(previous) | set(self.alarms) if previous.get(aid) != self.alarms.get(aid)}
        touched.alarm_ids |= changed
        if any(self._is_system(previous.get(a) or self.alarms.get(a)) for a in changed):
            touched[-1] = True
        return touched

    def _load_changes(self, session: Session, after: int, upto: int, now: datetime) -> _Touched:
        touched = _Touched()
        window = (ScreenChange.id > after, ScreenChange.id <= upto)
        changed_residents = select(ScreenChange.resident_id).where(*window, ScreenChange.resident_id.isnot(None))
        changed_alarms = select(ScreenChange.alarm_id).where(*window, ScreenChange.alarm_id.isnot(None))
        named = {rid for rid in session.scalars(changed_residents.distinct()) if rid is not None}
        for rid in named:
            self.residents.pop(rid, None)
            self.devices.pop(rid, None)
            touched[rid] = True
        self._read_residents(session, changed_residents)
        for row in session.execute(_alarm_query().where(Alarm.id.in_(changed_alarms))):
            fields = alarm_fields(row, row.resident_name)
            before = self.alarms.get(row.id)
            if row.state == AlarmState.RESOLVED:
                if before is None:
                    continue
                del self.alarms[row.id]
            else:
                self.alarms[row.id] = fields
            touched.alarm_ids.add(row.id)
            if self._is_system(fields):
                touched[-1] = True
            elif row.resident_id is not None:
                touched[row.resident_id] = True
        return touched

    def _read_residents(self, session: Session, ids: Select[Any] | None) -> None:
        query = (select(Resident.id, Resident.name, Resident.latitude, Resident.longitude, Resident.micro_grid_id,
                        MicroGrid.grid_id, Resident.last_activity_at, Resident.watch_from, Resident.away_until,
                        Resident.away_until_activity, Resident.inactivity_window_s, Resident.early_warning_s,
                        Grid.inactivity_window_s, Grid.early_warning_s)
                 .outerjoin(MicroGrid, Resident.micro_grid_id == MicroGrid.id)
                 .outerjoin(Grid, MicroGrid.grid_id == Grid.id))
        devices = select(Device.resident_id, Device.online).where(Device.resident_id.isnot(None))
        if ids is not None:
            query = query.where(Resident.id.in_(ids))
            devices = devices.where(Device.resident_id.in_(ids))
        default = self.default_limits
        for r in session.execute(query):
            self.residents[r[0]] = _Resident(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]),
                                             limits_from(default, r[10], r[11], r[12], r[13]))
        for rid, online in session.execute(devices):
            if rid is not None:
                self.devices.setdefault(rid, []).append(bool(online))

    @staticmethod
    def _is_system(alarm: dict[str, Any] | None) -> bool:
        return alarm is not None and alarm["kind"] == AlarmKind.SYSTEM

    def _due_now(self, now: datetime) -> dict[int, bool]:
        due: dict[int, bool] = {}
        while self._heap and self._heap[0][0] <= now:
            when, rid = heapq.heappop(self._heap)
            if self._due.get(rid) == when:
                del self._due[rid]
                due[rid] = True
        return due

    def _marker(self, rid: int, now: datetime, delta: _Delta) -> None:
        if rid < 0:
            return
        resident = self.residents.get(rid)
        if resident is None:
            if self.markers.pop(rid, None) is not None:
                delta.removed.add(rid)
            return
        alarm = None
        open_kinds = set()
        for a in self._resident_alarms(rid):
            open_kinds.add(a["kind"])
            if a["kind"] in RESIDENT_ALARMS and (alarm is None or _urgency(a) < _urgency(alarm)):
                alarm = a
        status = rules.resident_status(
            now=now, last_activity=resident.last_activity_at, watch_from=resident.watch_from,
            limits=resident.limits, away_until=resident.away_until, away_until_activity=resident.away_until_activity,
            open_alarm_kinds=frozenset(open_kinds), devices_online=self.devices.get(rid, []))
        shade, flashing, phone = colour(status.value, alarm, self.blind)
        marker = {"id": rid, "name": resident.name, "latitude": resident.latitude, "longitude": resident.longitude,
                  "colour": shade, "flashing": flashing, "phone": phone, "status": status.value,
                  "away": status.value == "away" or resident.away_until_activity,
                  "last_activity_at": resident.last_activity_at, "alarm_id": alarm["id"] if alarm else None}
        if self.markers.get(rid) != marker:
            self.markers[rid] = marker
            delta.markers.add(rid)
        self._schedule(resident, now)

    def _resident_alarms(self, rid: int) -> Iterable[dict[str, Any]]:
        index = self._by_resident()
        return index.get(rid, ())

    def _by_resident(self) -> dict[int, list[dict[str, Any]]]:
        # rebuilt lazily once per refresh (the alarms dict changes only inside refresh)
        key = (self.refreshes, len(self.alarms))
        if getattr(self, "_index_key", None) != key:
            index: dict[int, list[dict[str, Any]]] = {}
            for a in self.alarms.values():
                if a["resident_id"] is not None:
                    index.setdefault(a["resident_id"], []).append(a)
            self._index, self._index_key = index, key
        return self._index

    def _schedule(self, resident: _Resident, now: datetime) -> None:
        """The next instant this resident's status changes by time alone (early warning, away ends)."""
        when = None
        if resident.away_until is not None and now < resident.away_until:
            when = resident.away_until
        else:
            start = rules.watch_start(resident.last_activity_at, resident.watch_from)
            if start is not None and resident.away_until is not None:
                start = max(start, resident.away_until)
            if start is not None and now < start + resident.limits.early_warning:
                when = start + resident.limits.early_warning
        if when is None:
            self._due.pop(resident.id, None)
            return
        if self._due.get(resident.id) != when:
            self._due[resident.id] = when
            heapq.heappush(self._heap, (when, resident.id))
            if len(self._heap) > 3 * len(self._due) + 1000:  # drop the stale entries
                self._heap = [(w, r) for r, w in self._due.items()]
                heapq.heapify(self._heap)

    # -- per scope ----------------------------------------------------------------------------------
    def _scope_of_alarm(self, alarm: dict[str, Any]) -> tuple[int | None, int | None] | None:
        resident = self.residents.get(alarm["resident_id"]) if alarm["resident_id"] is not None else None
        return (resident.micro_grid_id, resident.grid_id) if resident is not None else None

    def _alarm_visible(self, scope: Scope, alarm: dict[str, Any]) -> bool:
        if scope == ALL:
            return True
        where = self._scope_of_alarm(alarm)
        return where is not None and in_scope(scope, *where)

    def _top(self, scope: Scope) -> list[int]:
        visible = (a for a in self.alarms.values() if self._alarm_visible(scope, a))
        best = heapq.nsmallest(ALARM_LIST_LIMIT, visible, key=lambda a: (SEVERITY_ORDER.get(a["severity"], 9),
                                                                        a["opened_at"], a["id"]))
        return [a["id"] for a in best]

    def _system(self, scope: Scope) -> list[dict[str, Any]]:
        if scope != ALL:
            return []
        return sorted((a for a in self.alarms.values() if a["kind"] == AlarmKind.SYSTEM), key=lambda a: a["opened_at"])

    def _render(self, session: Session, scope: Scope, view: _View, delta: _Delta, now: datetime) -> None:
        """This scope's part of ``delta``, as the JSON the stream sends ('' when it has nothing)."""
        out: dict[str, Any] = {"v": delta.version}
        markers = [self.markers[rid] for rid in sorted(delta.markers) if rid in self.markers
                   and self._marker_visible(scope, rid)]
        if markers:
            out["markers"] = markers
        removed = sorted(delta.removed)  # a removed resident's scope is gone with it: every scope drops it
        if removed:
            out["removed"] = removed
        if delta.alarms or delta.system:
            top = self._top(scope)
            before = set(view.top)
            now_top = set(top)
            changed = [self.alarms[a] for a in top if a not in before or a in delta.alarms]
            closed = sorted(before - now_top)
            if changed:
                out["alarms"] = changed
            if closed:
                out["closed"] = closed
            view.top = top
        if delta.system and scope == ALL:
            out["system"] = self._system(scope)
        if markers or removed or delta.alarms or delta.system:
            figures = kpis(session, now, self.zone, scope_clause(scope))
            if figures != view.kpis:
                out["kpis"] = figures
                view.kpis = figures
        delta.rendered[scope] = orjson.dumps(out).decode() if len(out) > 1 else ""

    def _marker_visible(self, scope: Scope, rid: int) -> bool:
        resident = self.residents.get(rid)
        return resident is not None and in_scope(scope, resident.micro_grid_id, resident.grid_id)

    # -- what the stream asks -------------------------------------------------------------------------
    def subscribe(self, scope: Scope, loop: asyncio.AbstractEventLoop) -> Subscription:
        subscription = Subscription(scope, loop)
        with self._lock:
            self.subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self.subscriptions.discard(subscription)

    def picture(self, scope: Scope) -> tuple[int, str, datetime]:
        """(version, the whole picture of ``scope`` as JSON, now): for a screen that connects."""
        with self._lock:
            now = self.clock.now()
            view = self.views.get(scope)
            with Session(self.engine) as session:
                figures = kpis(session, now, self.zone, scope_clause(scope))
            if view is None:
                view = self.views[scope] = _View()
            view.kpis = figures
            view.top = self._top(scope)
            markers = [m for rid, m in self.markers.items() if self._marker_visible(scope, rid)]
            picture = {"v": self.version, "epoch": self.epoch, "markers": markers,
                       "alarms": [self.alarms[a] for a in view.top], "system": self._system(scope),
                       "kpis": figures, "alarm_list_limit": ALARM_LIST_LIMIT}
            return self.version, orjson.dumps(picture).decode(), now

    def since(self, scope: Scope, version: int, epoch: str | None = None) -> list[tuple[int, str]] | None:
        """The deltas of ``scope`` after ``version`` (rendered: '' for a delta with nothing for this
        scope), or None when the model no longer holds them all (send the whole picture)."""
        with self._lock:
            if epoch is not None and epoch != self.epoch:
                return None
            if version >= self.version:
                return [] if version == self.version else None
            needed = [d for d in self.history if d.version > version]
            if not needed or needed[0].version != version + 1:
                return None
            if any(scope not in d.rendered for d in needed):
                return None
            return [(d.version, d.rendered[scope]) for d in needed]

class _Touched(dict[int, bool]):
    """Residents whose marker must be recomputed (key -1: the system alarms changed), and alarm ids."""

    def __init__(self) -> None:
        super().__init__()
        self.alarm_ids: set[int] = set()

    def __ior__(self, other: Any) -> _Touched:  # type: ignore[override,misc]
        self.update(other)
        if isinstance(other, _Touched):
            self.alarm_ids |= other.alarm_ids
        return self


def prune_changes(engine: Engine, keep: int = PRUNE_KEEP) -> int:
    """Delete the change log far behind its newest row (every process's model reads near the head; one
    that fell further behind reloads in full)."""
    with Session(engine) as session, session.begin():
        newest = session.scalar(select(func.max(ScreenChange.id))) or 0
        return changed(session, delete(ScreenChange).where(ScreenChange.id <= newest - keep))


def _alarm_query() -> Select[Any]:
    return select(*Alarm.__table__.c, Resident.name.label("resident_name")).outerjoin(
        Resident, Alarm.resident_id == Resident.id)


def scope_of(role: str, sees_all: bool, grid_id: int | None, micro_grid_id: int | None) -> Scope:
    """The scope of a principal (the same rule as ``api.auth.resident_scope``)."""
    if sees_all:
        return ALL
    if role == "grid_worker" and grid_id is not None:
        return ("grid", grid_id)
    if role == "micro_grid_worker" and micro_grid_id is not None:
        return ("micro", micro_grid_id)
    return ("none", None)
