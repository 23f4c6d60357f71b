"""Who is contacted and with what: the people behind a policy target for an alarm (the resident, the
family in priority order, the grid and micro-grid workers, the centre supervisor), the template each gets,
the parameters of their messages, the signed phone-page link, and the per-person cap."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from alerts import rules
from alerts.escalation import policy as esc
from alerts.escalation.links import finish_params, link_ref, pin_stamp
from alerts.escalation.templates import Language
from alerts.models import (
    Alarm,
    AlarmKind,
    Attempt,
    AttemptStatus,
    Contact,
    Device,
    Grid,
    MicroGrid,
    Resident,
    Worker,
    WorkerRole,
)
from config.settings import utcnow

log = logging.getLogger(__name__)


DEFAULT_LIMITS = rules.Limits(window=timedelta(hours=14), early_warning=timedelta(hours=10))


@dataclass(frozen=True)
class ChainSettings:
    calls_per_hour: int = 6
    sms_per_hour: int = 6
    retry_after: timedelta = timedelta(seconds=30)  # a pending attempt older than this is resent
    max_tries: int = 5
    language: Language = "zh"
    limits: rules.Limits = DEFAULT_LIMITS  # the global limits: a person's resolution restarts the window
    link_secret: str = ""  # signs the phone-page link in a worker's SMS (empty: no link)
    link_base: str = ""
    link_ttl: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class Person:
    target: str
    name: str
    phone: str | None
    worker_id: int | None = None


def phone_link(settings: ChainSettings, worker_id: int, alarm_id: int) -> dict[str, str]:
    """What an attempt stores for the link to the alarm on the phone page, for one worker: the address
    and the worker, never the credential (signed at sending, on real time: :func:`send_params`)."""
    return link_ref(settings.link_base, worker_id, alarm_id)


def send_params(session: Session, settings: ChainSettings, params: dict[str, str]) -> dict[str, str]:
    """An attempt's parameters as sent: its link signed for the worker's current PIN, valid
    ``link_ttl`` of real time."""
    def stamp_of(worker_id: int) -> str | None:
        worker = session.get(Worker, worker_id)
        return pin_stamp(worker.pin_hash) if worker is not None and worker.active else None

    return finish_params(params, settings.link_secret, settings.link_ttl, utcnow(), stamp_of)


def skip_reason(session: Session, person: Person, channel: str, now: datetime, settings: ChainSettings) -> str | None:
    if not person.phone:
        return f"no phone number for {person.name}"
    sent = session.scalar(select(func.count()).select_from(Attempt).where(
        Attempt.phone == person.phone, Attempt.channel == channel, Attempt.status != AttemptStatus.SKIPPED,
        Attempt.created_at > now - timedelta(hours=1))) or 0
    return esc.cap_reason(sent, channel, settings.calls_per_hour if channel == "voice" else settings.sms_per_hour)


def template_for(kind: str, target: str, channel: str) -> str:
    if kind in (AlarmKind.DEVICE_OFFLINE, AlarmKind.LOW_BATTERY, AlarmKind.CLOCK_SKEW):
        return "maintenance_sms"
    if kind == AlarmKind.RHYTHM:
        return "rhythm_sms"
    if kind == AlarmKind.EARLY_WARNING:
        return "early_warning_sms"
    if kind == AlarmKind.SYSTEM:
        return "system_call" if channel == "voice" else "system_sms"
    if kind == AlarmKind.INFRASTRUCTURE:
        return "infrastructure_call" if channel == "voice" else "infrastructure_sms"
    if target == "resident" and channel == "voice":
        return "check_call"
    return "alarm_call" if channel == "voice" else "alarm_sms"


def _resident_of(session: Session, alarm: Alarm) -> Resident | None:
    """The alarm's resident, directly or through its device (maintenance alarms)."""
    resident = session.get(Resident, alarm.resident_id) if alarm.resident_id else None
    if resident is None and alarm.device_id is not None:
        device = session.get(Device, alarm.device_id)
        resident = session.get(Resident, device.resident_id) if device and device.resident_id else None
    return resident


def alarm_params(session: Session, alarm: Alarm, now: datetime, language: Language) -> dict[str, str]:
    resident = _resident_of(session, alarm)
    hours = ""
    if resident is not None:
        start = max((t for t in (resident.last_activity_at, resident.watch_from) if t is not None), default=None)
        if start is not None:
            hours = f"{(now - start).total_seconds() / 3600:.0f}"
    infra = ""
    if alarm.possibly_infrastructure and alarm.incident_id is not None:
        infra = f"A{alarm.incident_id}"
    return {"code": alarm.code, "reason": alarm.reason, "name": resident.name if resident else "",
            "address": resident.address if resident else "", "phone": (resident.phone or "") if resident else "",
            "hours": hours, "link": "", "infra": infra, "infra_note": _infra_note(infra, language)}


def _infra_note(incident: str, language: Language) -> str:
    """The words a possibly-infrastructure alarm's messages carry (empty for any other alarm)."""
    if not incident:
        return ""
    if language == "zh":
        return f"（可能是网络故障，见{incident}）"
    return f" (possibly infrastructure, see {incident})"


def resolve_targets(session: Session, alarm: Alarm, contact: esc.Contact) -> list[Person]:
    """The people behind a policy target for this alarm's resident (grid, micro-grid, contacts). An
    infrastructure incident has no resident: its grid workers are those of the grids it covers."""
    if alarm.kind == AlarmKind.INFRASTRUCTURE:
        return _incident_targets(session, alarm, contact)
    resident = _resident_of(session, alarm)
    if contact.target == "resident":
        return [Person("resident", resident.name, resident.phone)] if resident else []
    if contact.target == "family":
        if resident is None:
            return []
        family = session.scalars(select(Contact).where(Contact.resident_id == resident.id)
                                 .order_by(Contact.priority, Contact.id)).all()
        if len(family) < contact.rank:
            return []
        chosen = family[contact.rank - 1]
        return [Person("family", chosen.name, chosen.phone)]
    micro = session.get(MicroGrid, resident.micro_grid_id) if resident and resident.micro_grid_id else None
    query = select(Worker).where(Worker.active.is_(True), Worker.role == contact.target)
    if contact.target == WorkerRole.GRID_WORKER:
        if micro is None:
            return []
        query = query.where(Worker.grid_id == micro.grid_id)
    elif contact.target == WorkerRole.MICRO_GRID_WORKER:
        if micro is None:
            return []
        query = query.where(Worker.micro_grid_id == micro.id)
    elif micro is not None:
        grid = session.get(Grid, micro.grid_id)
        community_id = grid.community_id if grid else None
        query = query.where(or_(Worker.community_id == community_id, Worker.community_id.is_(None)))
    return [Person(contact.target, w.name, w.phone, w.id) for w in session.scalars(query.order_by(Worker.id))]


def _incident_targets(session: Session, alarm: Alarm, contact: esc.Contact) -> list[Person]:
    scope = alarm.scope or {}
    query = select(Worker).where(Worker.active.is_(True), Worker.role == contact.target)
    if contact.target == WorkerRole.GRID_WORKER:
        query = query.where(Worker.grid_id.in_(scope.get("grids") or [-1]))
    elif contact.target == WorkerRole.SUPERVISOR:
        community_id = scope.get("community_id")
        query = query.where(or_(Worker.community_id == community_id, Worker.community_id.is_(None)))
    else:
        return []
    return [Person(contact.target, w.name, w.phone, w.id) for w in session.scalars(query.order_by(Worker.id))]
