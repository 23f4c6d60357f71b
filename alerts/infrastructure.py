"""Infrastructure incidents on the database: the tick step that opens one ``infrastructure`` alarm for a
correlated silence (decided by :mod:`alerts.incidents`), lists what it covers, resolves it when its group
reports again, and marks the resident alarms raised inside it "possibly infrastructure".

While an incident is open the devices it covers open no offline alarm of their own
(:func:`covered`), and an inactivity alarm raised for a covered home follows the escalation policy's
infrastructure variant (``resident_infrastructure``): the check call still goes out, then the centre,
and the family only after a person looked (:func:`release_hold`) or after the hold.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from alerts import alarms, incidents, rules, transitions, wording
from alerts.escalation import policy as esc
from alerts.limits import resident_limits
from alerts.models import (
    Alarm,
    AlarmKind,
    AlarmState,
    Community,
    Device,
    EscalationPolicy,
    Event,
    Gateway,
    Grid,
    MicroGrid,
    Outcome,
    Resident,
)

log = logging.getLogger(__name__)

INFRASTRUCTURE_VARIANT = "resident_infrastructure"
DEFAULT_HOLD = timedelta(minutes=30)


@dataclass
class IncidentResult:
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    merged: list[int] = field(default_factory=list)
    explained: list[int] = field(default_factory=list)  # resident alarms resolved by a drained backlog


@dataclass
class _Topology:
    groups: list[incidents.Group]
    by_key: dict[str, incidents.Group]
    devices_of: dict[str, dict[int, list[int]]]  # group key -> resident -> device ids (in that group)
    grids_of: dict[str, set[int]]
    community_of: dict[str, int | None]
    gateways: dict[int, Gateway]


def _topology(session: Session) -> _Topology:
    rows = session.execute(
        select(Device.id, Device.resident_id, Device.gateway_id, Device.last_seen_at, Resident.micro_grid_id,
               MicroGrid.grid_id, Grid.community_id)
        .join(Resident, Device.resident_id == Resident.id)
        .outerjoin(MicroGrid, Resident.micro_grid_id == MicroGrid.id)
        .outerjoin(Grid, MicroGrid.grid_id == Grid.id)
    ).all()
    names = {f"community:{i}": n for i, n in session.execute(select(Community.id, Community.name))}
    names |= {f"grid:{i}": n for i, n in session.execute(select(Grid.id, Grid.name))}
    names |= {f"micro_grid:{i}": n for i, n in session.execute(select(MicroGrid.id, MicroGrid.name))}
    gateways = {g.id: g for g in session.scalars(select(Gateway))}
    homes: dict[str, dict[int, datetime | None]] = defaultdict(dict)
    devices_of: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    grids_of: dict[str, set[int]] = defaultdict(set)
    community_of: dict[str, int | None] = {}
    for device_id, resident_id, gateway_id, seen, micro_id, grid_id, community_id in rows:
        keys = [f"community:{community_id}" if community_id is not None else None,
                f"grid:{grid_id}" if grid_id is not None else None,
                f"micro_grid:{micro_id}" if micro_id is not None else None,
                f"gateway:{gateway_id}" if gateway_id is not None else None]
        if resident_id is None:  # the join makes it so; said for the type checker
            continue
        for key in keys:
            if key is None:
                continue
            known = homes[key].get(resident_id)
            homes[key][resident_id] = seen if known is None else (known if seen is None else max(known, seen))
            devices_of[key][resident_id].append(device_id)
            if grid_id is not None:
                grids_of[key].add(grid_id)
            community_of.setdefault(key, community_id)
    for gateway in gateways.values():
        key = f"gateway:{gateway.id}"
        homes.setdefault(key, {})
        community_of.setdefault(key, gateway.community_id)
        names[key] = gateway.name or gateway.external_id
    groups = []
    for key, members in homes.items():
        offline_since = None
        if key.startswith("gateway:"):
            gateway = gateways[int(key.split(":")[1])]
            if gateway.availability == "offline":
                offline_since = gateway.availability_at
        groups.append(incidents.Group(key=key, label=names.get(key, key), homes=dict(members),
                                      offline_since=offline_since))
    return _Topology(groups, {g.key: g for g in groups}, devices_of, grids_of, community_of, gateways)


def _open_incidents(session: Session) -> list[Alarm]:
    return list(session.scalars(select(Alarm).where(Alarm.kind == AlarmKind.INFRASTRUCTURE,
                                                    Alarm.state != AlarmState.RESOLVED)))


def _since(alarm: Alarm) -> datetime:
    scope = alarm.scope or {}
    return datetime.fromisoformat(scope["since"]) if scope.get("since") else alarm.opened_at


def step(session: Session, now: datetime, limits: incidents.IncidentLimits, window: timedelta,
         local: Any = None, offline_after: timedelta = timedelta(hours=2)) -> IncidentResult:
    """One pass: resolve incidents whose group reports again, explain resident alarms by a drained backlog,
    open the incidents the silence calls for. ``window`` is the global inactivity window (the backlog test);
    ``local`` words an instant for people (default ISO)."""
    word = local or (lambda t: t.isoformat(timespec="minutes"))
    result = IncidentResult()
    open_rows = _open_incidents(session)
    if not open_rows and _nothing_to_judge(session, now, limits):
        _explain_by_backlog(session, now, window, word, result)
        return result
    topology = _topology(session)
    for alarm in open_rows:
        _maybe_resolve(session, alarm, topology, now, limits, word, result, offline_after)
    _explain_by_backlog(session, now, window, word, result)
    still_open = [a for a in open_rows if a.state != AlarmState.RESOLVED]
    stale: dict[int, datetime] = {}
    recent = session.scalars(select(Alarm).where(
        Alarm.kind == AlarmKind.INFRASTRUCTURE, Alarm.state == AlarmState.RESOLVED,
        Alarm.resolved_at >= now - limits.lookback)).all()
    for alarm in [*recent, *still_open]:
        for resident_id in (alarm.scope or {}).get("residents", []):
            stale[resident_id] = max(stale.get(resident_id, _since(alarm)), _since(alarm))
    current = [incidents.OpenIncident(a.id, (a.scope or {}).get("group", ""),
                                      frozenset((a.scope or {}).get("residents", [])), _since(a))
               for a in still_open]
    decided = incidents.plan(topology.groups, now, limits, current, stale)
    if decided.open or decided.extend:
        # the cheap pass found something: judge by their own usual gaps every home that pass could count as
        # overdue in any group (the same homes for every group, so the groups are compared on equal terms)
        candidates = {h for g in topology.groups for h, seen in g.homes.items()
                      if seen is not None and now - limits.lookback <= seen <= now - limits.window}
        decided = incidents.plan(topology.groups, now, limits, current, stale,
                                 _usual_gaps(session, candidates, now, limits.lookback))
    new_ids: dict[str, int] = {}
    by_position: dict[int, int] = {}
    for position, silence in enumerate(decided.open, start=1):
        alarm_id = _open(session, silence, topology, now, word, limits)
        if alarm_id is not None:
            new_ids[silence.key] = alarm_id
            by_position[-position] = alarm_id
            result.opened.append(alarm_id)
    for incident_id, homes in decided.extend.items():
        _extend(session, by_position.get(incident_id, incident_id), homes, topology, now)
    for alarm in still_open:
        into = decided.merge.get(alarm.id)
        if into is None or into not in new_ids:
            continue
        transitions.resolved_by_source(session, alarm, now, outcome=Outcome.MERGED,
                                       note=f"part of the larger incident A{new_ids[into]}")
        _move_members(session, alarm.id, new_ids[into])
        result.merged.append(alarm.id)
    return result


def _nothing_to_judge(session: Session, now: datetime, limits: incidents.IncidentLimits) -> bool:
    """Nothing the pass could act on, found without reading the district: no gateway reports itself offline,
    and fewer than ``min_homes`` devices of homes were last heard between ``now - lookback`` and
    ``now - window``. A home is judged overdue (:func:`alerts.incidents.silence_in`) only when its last
    message lies in that span, and a home's last message is one of its devices' last: fewer such devices
    than ``min_homes`` means fewer overdue homes in every group, so no silence is found. (The caller has
    already seen that no incident is open: those need their group's homes to be judged over.)"""
    if session.scalar(select(Gateway.id).where(Gateway.availability == "offline").limit(1)) is not None:
        return False
    span = (select(Device.id).where(Device.resident_id.isnot(None), Device.last_seen_at >= now - limits.lookback,
                                    Device.last_seen_at <= now - limits.window).limit(limits.min_homes).subquery())
    return (session.scalar(select(func.count()).select_from(span)) or 0) < limits.min_homes


def _usual_gaps(session: Session, homes: set[int], now: datetime, lookback: timedelta) -> dict[int, timedelta]:
    """Each home's longest gap between two stored messages within the lookback before its last one."""
    instants: dict[int, list[datetime]] = defaultdict(list)
    ordered = sorted(homes)
    for start in range(0, len(ordered), 500):
        rows = session.execute(select(Event.resident_id, Event.occurred_at).where(
            Event.resident_id.in_(ordered[start:start + 500]), Event.occurred_at >= now - 2 * lookback,
            Event.occurred_at <= now).order_by(Event.resident_id, Event.occurred_at))
        for resident_id, at in rows:
            if resident_id is not None:
                instants[resident_id].append(at)
    gaps = {}
    for home in homes:
        seen = instants.get(home, [])
        recent = [t for t in seen if seen and t >= seen[-1] - lookback]
        gaps[home] = incidents.usual_gap(recent, lookback)
    return gaps


def _open(session: Session, silence: incidents.Silence, topology: _Topology, now: datetime, word: Any,
          limits: incidents.IncidentLimits) -> int | None:
    key = silence.key
    # every home of the group not heard since the silence began is covered, not only those found overdue:
    # a quiet home behind the same dark gateway is just as dark (and its devices open no alarm of their own)
    slack = min(incidents.HEARD_SLACK, limits.window / 5)
    homes = set(silence.homes) | {r for r, seen in silence.group.homes.items()
                                  if seen is None or seen <= silence.since + slack}
    devices = sorted(d for r in homes for d in topology.devices_of[key].get(r, []))
    offline = silence.group.offline_since is not None
    params = {"group": silence.group.label, "since": silence.since.isoformat(), "homes": len(homes),
              "devices": len(devices), "silent": len(silence.homes), "reporting": silence.reporting}
    code = "gateway_offline" if offline else "infrastructure"
    words = wording.configured()  # the stored text (SMS, calls) in notify.language; screens word the code
    reason = wording.reason(code, params, words.language, words.zone)
    alarm_id = alarms.open_alarm(session, AlarmKind.INFRASTRUCTURE, now, reason=reason, reason_code=code,
                                 reason_params=params, system_key=f"infra:{key}")
    if alarm_id is None:
        return None
    alarm = session.get(Alarm, alarm_id)
    assert alarm is not None
    alarm.scope = {"group": key, "label": silence.group.label, "residents": sorted(homes),
                   "devices": devices, "grids": sorted(topology.grids_of.get(key, set())),
                   "community_id": topology.community_of.get(key), "since": silence.since.isoformat(),
                   "gateway_offline": silence.group.offline_since is not None, "reporting": silence.reporting}
    log.error("infrastructure incident opened", extra={"alarm": alarm_id, "group": key,
                                                       "homes": len(silence.homes), "reason": silence.reason})
    return alarm_id


def _extend(session: Session, alarm_id: int, homes: frozenset[int], topology: _Topology, now: datetime) -> None:
    """More homes of the incident's group went silent: it covers them too (and their devices)."""
    alarm = session.get(Alarm, alarm_id)
    if alarm is None or alarm.state == AlarmState.RESOLVED:
        return
    scope = dict(alarm.scope or {})
    key = scope.get("group", "")
    added = sorted(set(homes) - set(scope.get("residents", [])))
    if not added:
        return
    devices = {d for r in added for d in topology.devices_of[key].get(r, [])}
    scope["residents"] = sorted({*scope.get("residents", []), *added})
    scope["devices"] = sorted({*scope.get("devices", []), *devices})
    alarm.scope = scope
    alarms.record(session, alarm, now, action="extended", actor="shouwang",
                  detail=f"{len(added)} more homes silent; {len(scope['residents'])} homes covered")


def _move_members(session: Session, old: int, new: int) -> None:
    for alarm in session.scalars(select(Alarm).where(Alarm.incident_id == old, Alarm.state != AlarmState.RESOLVED)):
        alarm.incident_id = new


def _maybe_resolve(session: Session, alarm: Alarm, topology: _Topology, now: datetime,
                   limits: incidents.IncidentLimits, word: Any, result: IncidentResult,
                   offline_after: timedelta) -> None:
    scope = alarm.scope or {}
    key = scope.get("group", "")
    group = topology.by_key.get(key)
    since = _since(alarm)
    members = {r: (group.homes.get(r) if group else None) for r in scope.get("residents", [])}
    back = incidents.heard_again(members, since, limits)
    if scope.get("gateway_offline"):
        gateway = topology.gateways.get(int(key.split(":")[1])) if key.startswith("gateway:") else None
        back = back or gateway is None or incidents.gateway_back(
            group.offline_since if group else None, gateway.availability)
    if not back:
        return
    transitions.resolved_by_source(session, alarm, now, outcome=Outcome.REPORTING_AGAIN,
                                   note=f"{scope.get('label', key)} reports again at {word(now)}")
    released = release_hold(session, alarm, now, by="shouwang", why="the incident is over")
    # the covered devices not heard since: their offline limit runs from the end of the outage, so the
    # group's slow reporters are not a flood of maintenance alarms; a device that died meanwhile still is one
    slack = min(incidents.HEARD_SLACK, limits.window / 5)
    session.execute(update(Device).where(
        Device.id.in_(scope.get("devices") or [-1]), Device.online.is_(True),
        or_(Device.last_seen_at.is_(None), Device.last_seen_at <= since + slack),
    ).values(offline_due_at=now + offline_after).execution_options(synchronize_session=False))
    log.warning("infrastructure incident over", extra={"alarm": alarm.id, "released": released})
    result.resolved.append(alarm.id)


def _explain_by_backlog(session: Session, now: datetime, window: timedelta, word: Any,
                        result: IncidentResult) -> None:
    """Possibly-infrastructure alarms that nobody has taken yet, whose gap the gateway's drained backlog
    fills (movement that happened before the alarm should have opened): resolved as activity resumed."""
    rows = session.execute(
        select(Alarm, Resident).join(Resident, Alarm.resident_id == Resident.id).where(
            Alarm.kind == AlarmKind.INACTIVITY, Alarm.state == AlarmState.OPEN,
            Alarm.possibly_infrastructure.is_(True), Resident.last_activity_at.isnot(None))
    ).all()
    for alarm, resident in rows:
        activity = resident.last_activity_at
        if activity is None or (alarm.last_activity_at is not None and activity <= alarm.last_activity_at):
            continue
        resident_window = resident_limits(session, resident, rules.Limits(window=window, early_warning=window)).window
        if incidents.backlog_explains(activity, alarm.opened_at, resident_window):
            transitions.resolved_by_activity(session, alarm, now,
                                             note=f"movement at {word(activity)} (delivered after the outage)")
            result.explained.append(alarm.id)


def covered(session: Session, now: datetime, grace: timedelta) -> tuple[set[int], set[int]]:
    """The device and resident ids covered by open infrastructure incidents, and by those over for less than
    ``grace``: a gateway that comes back delivers its backlog over some time, and a device whose newest
    held message has not been stored yet is not dead."""
    devices: set[int] = set()
    residents: set[int] = set()
    for scope in session.scalars(select(Alarm.scope).where(
            Alarm.kind == AlarmKind.INFRASTRUCTURE, Alarm.outcome.is_distinct_from(Outcome.MERGED),
            or_(Alarm.state != AlarmState.RESOLVED, Alarm.resolved_at >= now - grace))):
        devices.update((scope or {}).get("devices", []))
        residents.update((scope or {}).get("residents", []))
    return devices, residents


# the resident alarms on silence that an open incident may explain: marked, and their family held
MARKED_KINDS = (AlarmKind.INACTIVITY, AlarmKind.ROUTINE)


def mark_raised(session: Session, alarm_ids: Iterable[int], now: datetime) -> list[int]:
    """Inactivity and time-window/dwell alarms just raised for homes an open incident covers: marked possibly
    infrastructure, pointed at the incident, and given the policy's infrastructure variant with its family
    hold (the check call still goes out: the phone network is not the sensor network)."""
    ids = list(alarm_ids)
    if not ids:
        return []
    by_resident: dict[int, Alarm] = {}
    for incident in _open_incidents(session):
        for resident_id in (incident.scope or {}).get("residents", []):
            by_resident.setdefault(resident_id, incident)
    if not by_resident:
        return []
    variant = session.scalar(select(EscalationPolicy.definition).where(
        EscalationPolicy.name == INFRASTRUCTURE_VARIANT))
    marked = []
    for alarm in session.scalars(select(Alarm).where(Alarm.id.in_(ids), Alarm.kind.in_(MARKED_KINDS))):
        covering = by_resident.get(alarm.resident_id or -1)
        if covering is None or alarm.step >= 0:
            continue
        alarm.possibly_infrastructure = True
        alarm.incident_id = covering.id
        hold = DEFAULT_HOLD
        if variant is not None:
            alarm.policy = variant
            hold = esc.policy_from_dict(variant).hold or DEFAULT_HOLD
        alarm.hold_until = alarm.opened_at + hold
        alarms.record(session, alarm, now, action="possibly_infrastructure", actor="shouwang",
                      detail=f"raised inside infrastructure incident {covering.code}; family held until "
                             f"{alarm.hold_until.isoformat(timespec='minutes')}")
        marked.append(alarm.id)
    return marked


def release_hold(session: Session, incident: Alarm, now: datetime, *, by: str, why: str) -> list[int]:
    """The family hold of every open alarm inside ``incident`` ends now (a person looked, or the incident is
    over): their chains go on to the family."""
    released = []
    for alarm in session.scalars(select(Alarm).where(Alarm.incident_id == incident.id,
                                                     Alarm.state != AlarmState.RESOLVED)):
        if transitions.hold_released(session, alarm, now, by=by, why=why):
            released.append(alarm.id)
    return released


def not_infrastructure(session: Session, alarm: Alarm, now: datetime, *, by: str) -> list[int]:
    """"Not infrastructure: escalate" — a person on the centre side looked. On a possibly-infrastructure
    alarm: its family hold ends now. On an infrastructure incident: the hold of every alarm inside it."""
    if alarm.state == AlarmState.RESOLVED:
        raise alarms.AlarmError("alarm_resolved", code=alarm.code)
    why = "not infrastructure: escalate"
    if alarm.kind == AlarmKind.INFRASTRUCTURE:
        released = release_hold(session, alarm, now, by=by, why=why)
        alarms.record(session, alarm, now, action="not_infrastructure", actor=by,
                      detail=f"family hold released for {len(released)} alarm(s)")
        return released
    if not alarm.possibly_infrastructure:
        raise alarms.AlarmError("alarm_not_held", code=alarm.code)
    return [alarm.id] if transitions.hold_released(session, alarm, now, by=by, why=why) else []
