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
import itertools
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
from sqlalchemy import ColumnElement, DateTime, Engine, Select, delete, false, func, select, true, type_coerce
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
HISTORY_BYTES = 64 * 1024 * 1024  # ... and at most this much of them (a mass change's deltas are big)
COMPACT_AT = 64  # a delta with more markers than this carries them as columns (``marker_columns``)
MARKER_FIELDS = ("id", "name", "latitude", "longitude", "colour", "flashing", "phone", "status", "away",
                 "last_activity_at", "alarm_id")
ALARM_MARKER_FIELDS = ("colour", "flashing", "phone", "status", "alarm_id")  # what an alarm's change moves
POLL_SECONDS = 0.5  # SQLite (and a lost LISTEN connection): how often the cursor is read
KPI_EVERY = 0.3  # seconds: the KPIs of a scope are read at most this often (a burst of changes)
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


class _Alarm:
    """What the model holds of every open alarm: what a marker's colour and the alarm list's order need
    (a district's mass silence holds 100,000). The list's rows (:func:`alerts.views.alarm_fields`) are
    read for the alarms a screen shows, in :attr:`ScreenModel.fields`."""

    __slots__ = ("id", "kind", "opened_at", "resident_id", "responders_called_at", "severity", "state")

    def __init__(self, row: Any) -> None:
        self.id, self.kind, self.severity, self.state, self.resident_id, self.opened_at, \
            self.responders_called_at = row

    def __getitem__(self, key: str) -> Any:  # reads like the alarm's row for alerts.screen.colour
        return getattr(self, key)

    def key(self) -> tuple[Any, ...]:
        return (self.kind, self.severity, self.state, self.resident_id, self.opened_at, self.responders_called_at)


@dataclass
class _Delta:
    version: int
    markers: set[int] = field(default_factory=set)
    removed: set[int] = field(default_factory=set)
    alarms: set[int] = field(default_factory=set)
    system: bool = False
    fields: set[str] = field(default_factory=set)  # the marker fields that changed (all, for a new marker)
    rendered: dict[Scope, str] = field(default_factory=dict)
    size: int = 0


@dataclass
class _View:
    """What the screens of one scope were last sent: the top alarms and the KPIs."""

    top: list[int] = field(default_factory=list)
    kpis: dict[str, Any] | None = None
    kpis_due: bool = False  # changed since the figures were last read
    kpis_at: float = 0.0  # when they were (monotonic)


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
        self.alarms: dict[int, _Alarm] = {}  # every open alarm
        self.by_resident: dict[int, dict[int, _Alarm]] = {}
        self.system_ids: set[int] = set()  # the open system alarms (the watch is blind)
        self.fields: dict[int, dict[str, Any]] = {}  # the rows of the alarms a screen's list shows, as the API
        self.markers: dict[int, dict[str, Any]] = {}
        self._limits: dict[tuple[Any, ...], rules.Limits] = {}
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
                    due = any(view.kpis_due for view in list(self.views.values()))
                    for _ in listener.notifies(timeout=KPI_EVERY if due else POLL_SECONDS * 2, stop_after=1):
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
                kpis_due = any(view.kpis_due for view in self.views.values())
                if (not full and newest == self.cursor and not (self._heap and self._heap[0][0] <= now)
                        and not kpis_due):
                    return None
                delta = _Delta(self.version + 1)
                if full:
                    touched = self._load_all(session, now)
                    self._loaded_at = time.monotonic()
                elif newest > self.cursor:
                    touched = self._load_changes(session, self.cursor, newest, now)
                else:
                    touched = _Touched()
                self.cursor = max(self.cursor, newest)
                touched |= self._due_now(now)
                blind = bool(self.system_ids)
                delta.system = blind != self.blind or bool(touched.pop(-1, None))
                if blind != self.blind:
                    self.blind = blind
                    touched |= {rid: True for rid in self.residents}
                for rid, reloaded in touched.items():
                    self._marker(rid, now, delta, reloaded)
                delta.alarms = touched.alarm_ids
                for aid in delta.alarms:
                    self.fields.pop(aid, None)
                for scope, view in self.views.items():
                    self._render(session, scope, view, delta, now)
                self._keep_fields()
            if not (delta.markers or delta.removed or delta.alarms or delta.system
                    or any(delta.rendered.values())):
                return None
            self.version = delta.version
            delta.size = sum(len(text) for text in delta.rendered.values())
            self.history.append(delta)
            while len(self.history) > 1 and sum(d.size for d in self.history) > HISTORY_BYTES:
                self.history.popleft()
            for subscription in list(self.subscriptions):
                subscription.wake()
            return delta

    def _load_all(self, session: Session, now: datetime) -> _Touched:
        touched = _Touched()
        old = set(self.residents)
        self.residents, self.devices = {}, {}
        self._read_residents(session, None, touched)
        for rid in old - set(self.residents):
            touched[rid] = True
        previous = self.alarms
        self.alarms, self.by_resident, self.system_ids = {}, {}, set()
        for alarm in self._read_alarms(session, Alarm.state != AlarmState.RESOLVED):
            self._hold(alarm)
        changed = {aid for aid in set(previous) | set(self.alarms)
                   if aid not in previous or aid not in self.alarms or previous[aid].key() != self.alarms[aid].key()}
        changed |= set(self.fields)  # the rows shown are read again
        touched.alarm_ids |= changed
        if any(self._is_system(previous.get(a) or self.alarms.get(a)) for a in changed):
            touched[-1] = True
        return touched

    def _load_changes(self, session: Session, after: int, upto: int, now: datetime) -> _Touched:
        """The residents and alarms named in the change log after ``after``, each read in one statement
        whatever their number. A change of an alarm (a transition: its alarm id is in the row) reads the
        alarm only, never its resident; one that leaves what the screen shows of it as it was (a chain
        step) recomputes no marker."""
        touched = _Touched()
        window = (ScreenChange.id > after, ScreenChange.id <= upto)
        changed_residents = select(ScreenChange.resident_id).where(
            *window, ScreenChange.resident_id.isnot(None), ScreenChange.alarm_id.is_(None))
        changed_alarms = select(ScreenChange.alarm_id).where(*window, ScreenChange.alarm_id.isnot(None))
        named = [rid for rid in session.scalars(changed_residents.distinct()) if rid is not None]
        for rid in named:
            self.residents.pop(rid, None)
            self.devices.pop(rid, None)
            touched[rid] = True
        if named:
            self._read_residents(session, changed_residents, None)
        for alarm in self._read_alarms(session, Alarm.id.in_(changed_alarms)):
            before = self.alarms.get(alarm.id)
            if alarm.state == AlarmState.RESOLVED:
                if before is None:
                    continue
                self._drop(before)
            elif before is not None and before.key() == alarm.key():
                if alarm.id in self.fields:  # its row in a list (its step, ...) may have changed
                    touched.alarm_ids.add(alarm.id)
                continue
            else:
                if before is not None:
                    self._drop(before)
                self._hold(alarm)
            touched.alarm_ids.add(alarm.id)
            if self._is_system(alarm):
                touched[-1] = True
            if alarm.resident_id is not None:  # False: their marker again, not their row
                touched.setdefault(alarm.resident_id, False)
            if before is not None and before.resident_id is not None:
                touched.setdefault(before.resident_id, False)
        return touched

    def _read_alarms(self, session: Session, where: ColumnElement[bool]) -> list[_Alarm]:
        opened: Any = Alarm.opened_at
        called: Any = Alarm.responders_called_at
        if session.get_bind().dialect.name == "postgresql":  # aware already: no conversion per row
            opened = type_coerce(Alarm.opened_at, DateTime(timezone=True))
            called = type_coerce(Alarm.responders_called_at, DateTime(timezone=True))
        query = select(Alarm.id, Alarm.kind, Alarm.severity, Alarm.state, Alarm.resident_id, opened, called)
        return [_Alarm(row) for row in session.connection().execute(query.where(where)).all()]

    def _hold(self, alarm: _Alarm) -> None:
        self.alarms[alarm.id] = alarm
        if alarm.kind == AlarmKind.SYSTEM:
            self.system_ids.add(alarm.id)
        if alarm.resident_id is not None:
            self.by_resident.setdefault(alarm.resident_id, {})[alarm.id] = alarm

    def _drop(self, alarm: _Alarm) -> None:
        self.alarms.pop(alarm.id, None)
        self.fields.pop(alarm.id, None)
        self.system_ids.discard(alarm.id)
        if alarm.resident_id is not None:
            own = self.by_resident.get(alarm.resident_id)
            if own is not None:
                own.pop(alarm.id, None)
                if not own:
                    del self.by_resident[alarm.resident_id]

    def _read_residents(self, session: Session, ids: Select[Any] | None, touched: _Touched | None) -> None:
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
        limits = self._limits
        for r in session.execute(query).tuples():
            key = (r[10], r[11], r[12], r[13])
            own = limits.get(key)
            if own is None:
                own = limits[key] = limits_from(self.default_limits, *key)
            self.residents[r[0]] = _Resident(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]), own)
            if touched is not None:
                touched[r[0]] = True
        for rid, online in session.execute(devices).tuples():
            if rid is not None:
                self.devices.setdefault(rid, []).append(bool(online))

    def _keep_fields(self) -> None:
        """Forget the rows no screen's list shows any more."""
        shown = {aid for view in self.views.values() for aid in view.top}
        shown |= self.system_ids
        for aid in [aid for aid in self.fields if aid not in shown]:
            del self.fields[aid]

    def _rows(self, session: Session, ids: Iterable[int]) -> list[dict[str, Any]]:
        """The list rows of ``ids`` (as the API shows them), read once and kept while shown."""
        ids = list(ids)
        missing = [aid for aid in ids if aid not in self.fields]
        for chunk in range(0, len(missing), 500):
            for row in session.execute(_alarm_query().where(Alarm.id.in_(missing[chunk:chunk + 500]))):
                self.fields[row.id] = alarm_fields(row, row.resident_name)
        return [self.fields[aid] for aid in ids if aid in self.fields]

    @staticmethod
    def _is_system(alarm: _Alarm | None) -> bool:
        return alarm is not None and alarm.kind == AlarmKind.SYSTEM

    def _due_now(self, now: datetime) -> dict[int, bool]:
        due: dict[int, bool] = {}
        while self._heap and self._heap[0][0] <= now:
            when, rid = heapq.heappop(self._heap)
            if self._due.get(rid) == when:
                del self._due[rid]
                due[rid] = True
        return due

    def _marker(self, rid: int, now: datetime, delta: _Delta, reloaded: bool = True) -> None:
        """Recompute ``rid``'s marker; into ``delta`` when it changed. ``reloaded``: the resident's row was
        read again (else only their alarms changed: name and place stay, the instants of time did not move)."""
        if rid < 0:
            return
        resident = self.residents.get(rid)
        if resident is None:
            if self.markers.pop(rid, None) is not None:
                delta.removed.add(rid)
            return
        alarm: Any = None
        open_kinds: set[str] = set()
        for a in self.by_resident.get(rid, {}).values():
            open_kinds.add(a.kind)
            if a.kind in RESIDENT_ALARMS and (alarm is None or _urgency(a) < _urgency(alarm)):  # type: ignore[arg-type]
                alarm = a
        status = rules.resident_status(
            now=now, last_activity=resident.last_activity_at, watch_from=resident.watch_from,
            limits=resident.limits, away_until=resident.away_until, away_until_activity=resident.away_until_activity,
            open_alarm_kinds=frozenset(open_kinds), devices_online=self.devices.get(rid, []))
        shade, flashing, phone = colour(status.value, alarm, self.blind)
        marker = {"id": rid, "name": resident.name, "latitude": resident.latitude, "longitude": resident.longitude,
                  "colour": shade, "flashing": flashing, "phone": phone, "status": status.value,
                  "away": status.value == "away" or resident.away_until_activity,
                  "last_activity_at": resident.last_activity_at, "alarm_id": alarm.id if alarm else None}
        before = self.markers.get(rid)
        if before != marker:
            if before is None:
                delta.fields.update(MARKER_FIELDS)
            elif len(delta.fields) < len(MARKER_FIELDS):
                fields = delta.fields
                for k in MARKER_FIELDS if reloaded else ALARM_MARKER_FIELDS:
                    if k not in fields and before[k] != marker[k]:
                        fields.add(k)
            self.markers[rid] = marker
            delta.markers.add(rid)
        if reloaded:
            self._schedule(resident, now)

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
    def _alarm_visible(self, scope: Scope, alarm: _Alarm) -> bool:
        if scope == ALL:
            return True
        resident = self.residents.get(alarm.resident_id) if alarm.resident_id is not None else None
        return resident is not None and in_scope(scope, resident.micro_grid_id, resident.grid_id)

    def _top(self, scope: Scope) -> list[int]:
        visible = (a for a in self.alarms.values() if self._alarm_visible(scope, a))
        best = heapq.nsmallest(ALARM_LIST_LIMIT, visible, key=lambda a: (SEVERITY_ORDER.get(a.severity, 9),
                                                                        a.opened_at, a.id))
        return [a.id for a in best]

    def _top_stays(self, view: _View, delta: _Delta) -> bool:
        """Whether the alarms that changed leave a full list as it was: none of them is in it and every
        one still open sorts after its last (a mass silence's later alarms), so no scan of them all."""
        if len(view.top) < ALARM_LIST_LIMIT or delta.system or not set(view.top).isdisjoint(delta.alarms):
            return False
        last = self.alarms.get(view.top[-1])
        if last is None:
            return False
        bound = (SEVERITY_ORDER.get(last.severity, 9), last.opened_at, last.id)
        for aid in delta.alarms:
            a = self.alarms.get(aid)
            if a is not None and (SEVERITY_ORDER.get(a.severity, 9), a.opened_at, a.id) <= bound:
                return False
        return True

    def _system(self, session: Session, scope: Scope) -> list[dict[str, Any]]:
        if scope != ALL:
            return []
        ids = [a.id for a in sorted((self.alarms[aid] for aid in self.system_ids), key=lambda a: (a.opened_at, a.id))]
        return self._rows(session, ids)

    def _render(self, session: Session, scope: Scope, view: _View, delta: _Delta, now: datetime) -> None:
        """This scope's part of ``delta``, as the JSON the stream sends ('' when it has nothing)."""
        out: dict[str, Any] = {"v": delta.version}
        markers = [self.markers[rid] for rid in sorted(delta.markers) if rid in self.markers
                   and self._marker_visible(scope, rid)]
        if len(markers) > COMPACT_AT:
            out["marker_columns"] = marker_columns(markers, [f for f in MARKER_FIELDS if f in delta.fields])
        elif markers:
            out["markers"] = markers
        removed = sorted(delta.removed)  # a removed resident's scope is gone with it: every scope drops it
        if removed:
            out["removed"] = removed
        if delta.alarms or delta.system:
            top = view.top if self._top_stays(view, delta) else self._top(scope)
            before = set(view.top)
            now_top = set(top)
            changed = self._rows(session, [a for a in top if a not in before or a in delta.alarms])
            closed = sorted(before - now_top)
            if changed:
                out["alarms"] = changed
            if closed:
                out["closed"] = closed
            view.top = top
        if delta.system and scope == ALL:
            out["system"] = self._system(session, scope)
        if markers or removed or delta.alarms or delta.system:
            view.kpis_due = True
        if view.kpis_due and (time.monotonic() - view.kpis_at >= KPI_EVERY):
            # a burst of changes (a mass silence's batches) reads the figures once per KPI_EVERY: the
            # last of the burst is read on the model's next wake (within KPI_EVERY)
            view.kpis_due, view.kpis_at = False, time.monotonic()
            figures = kpis(session, now, self.zone, None if scope == ALL else scope_clause(scope))
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
            if view is None:
                view = self.views[scope] = _View()
            view.top = self._top(scope)
            with Session(self.engine) as session:
                figures = kpis(session, now, self.zone, None if scope == ALL else scope_clause(scope))
                alarms, system = self._rows(session, view.top), self._system(session, scope)
            view.kpis = figures
            markers = [self.markers[rid] for rid in sorted(self.markers) if self._marker_visible(scope, rid)]
            picture: dict[str, Any] = {"v": self.version, "epoch": self.epoch, "markers": markers, "alarms": alarms,
                                       "system": system, "kpis": figures, "alarm_list_limit": ALARM_LIST_LIMIT}
            if len(markers) > COMPACT_AT:  # a district: its markers as columns, a third of the bytes
                picture["markers"] = []
                picture["marker_columns"] = marker_columns(markers, list(MARKER_FIELDS))
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


def marker_columns(markers: list[dict[str, Any]], fields: list[str]) -> dict[str, Any]:
    """Many markers as columns: ``id`` ascending and delta-coded (the first id, then each one's distance
    from the one before); each other field in ``fields`` (those that changed: a marker the screen has
    keeps the others) as ``{"all": value}`` when every marker has the same, ``{"values": [...], "index":
    [...]}`` when few values repeat, else the plain list. The screen (api/static/screen.js) expands them."""
    ids = [m["id"] for m in markers]
    out: dict[str, Any] = {"n": len(markers), "id": [ids[0], *(b - a for a, b in itertools.pairwise(ids))]}
    for name in fields:
        if name == "id":
            continue
        column = [m[name] for m in markers]
        distinct: dict[Any, int] = {}
        for value in column:
            if value not in distinct:
                distinct[value] = len(distinct)
                if len(distinct) > 256:
                    break
        if len(distinct) == 1:
            out[name] = {"all": column[0]}
        elif len(distinct) <= 256 and len(distinct) * 4 < len(column):
            out[name] = {"values": list(distinct), "index": [distinct[v] for v in column]}
        else:
            out[name] = column
    return out


def expand_marker_columns(columns: dict[str, Any], known: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The markers of :func:`marker_columns`, each over what ``known`` holds of it (what a screen does)."""
    ids, at = [], 0
    for step in columns["id"]:
        at += step
        ids.append(at)
    out = []
    for i, rid in enumerate(ids):
        marker = dict(known.get(rid, {}), id=rid)
        for name, column in columns.items():
            if name in ("n", "id"):
                continue
            if isinstance(column, dict) and "all" in column:
                marker[name] = column["all"]
            elif isinstance(column, dict):
                marker[name] = column["values"][column["index"][i]]
            else:
                marker[name] = column[i]
        out.append(marker)
    return out


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
