"""Escalation chains on the database: claim due alarms, start steps, place calls and SMS through the
provider, take the provider's events (status, keypress, SMS reply) and audit that no chain stalls.

Exactly once across restarts and processes: an alarm's step is claimed with its row locked
(``FOR UPDATE SKIP LOCKED``) and a token bumped in the same transaction; the attempt rows are committed
(``pending``) before the provider is called, outside any transaction. A crash in between leaves a
pending attempt that the auditor claims with a conditional UPDATE and sends again: a second call beats
a missing one.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.orm import Session

import config
from alerts import alarms as alarm_ops
from alerts import escalation as esc
from alerts import rules
from alerts.alarms import snapshot_policy
from alerts.db import claim
from alerts.links import sign_link
from alerts.messages import OUTCOME_WORDS, Language, Message
from alerts.models import (
    Alarm,
    AlarmKind,
    AlarmState,
    Attempt,
    AttemptStatus,
    Contact,
    Device,
    EscalationPolicy,
    Grid,
    MicroGrid,
    Outcome,
    Resident,
    Worker,
    WorkerRole,
)
from alerts.notifiers.base import CallStatus, InboundSms, Keypress, NotifyError, Provider, ProviderEvent, SmsStatus
from alerts.service import resident_limits

log = logging.getLogger(__name__)

CLAIM_BATCH = 200
CODE = re.compile(r"\bA(\d+)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ChainSettings:
    calls_per_hour: int = 6
    sms_per_hour: int = 6
    retry_after: timedelta = timedelta(seconds=30)  # a pending attempt older than this is resent
    max_tries: int = 5
    language: Language = "zh"
    default_window: timedelta = timedelta(hours=14)  # to restart a resident's window on "confirmed fine"
    link_secret: str = ""  # signs the phone-page link in a worker's SMS (empty: no link)
    link_base: str = ""
    link_ttl: timedelta = timedelta(hours=24)


@dataclass
class RunResult:
    started_steps: list[tuple[int, int]] = field(default_factory=list)  # (alarm id, step)
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    rearmed: list[int] = field(default_factory=list)


# -- policies ---------------------------------------------------------------------------------------------
def seed_policies(session: Session, definitions: Sequence[dict[str, Any]], now: datetime) -> int:
    """Insert the default policies that the database does not have yet (edits are never overwritten)."""
    have = set(session.scalars(select(EscalationPolicy.name)))
    added = 0
    for definition in definitions:
        policy = esc.policy_from_dict(definition)  # refuses a broken default loudly
        if policy.name not in have:
            session.add(EscalationPolicy(name=policy.name, definition=policy.to_dict(), updated_at=now,
                                         updated_by="seed"))
            added += 1
    return added


# -- the runner (called by the tick) ----------------------------------------------------------------------
def run(engine: Engine, now: datetime, provider: Provider, settings: ChainSettings) -> RunResult:
    result = RunResult()
    events = provider.poll(now)
    if events:
        handle_events(engine, events, now, settings)
    _audit(engine, now, result)
    for _ in range(50):
        created, claimed = _advance_due(engine, now, settings, result)
        _send(engine, created, now, provider, result)
        if claimed < CLAIM_BATCH:
            break
    _send(engine, _claim_stuck_attempts(engine, now, settings), now, provider, result)
    return result


def _advance_due(engine: Engine, now: datetime, settings: ChainSettings, result: RunResult) -> tuple[list[int], int]:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        query = (select(Alarm).where(Alarm.next_action_at.isnot(None), Alarm.next_action_at <= now)
                 .order_by(Alarm.next_action_at).limit(CLAIM_BATCH))
        due = list(session.scalars(claim(query, session.get_bind().dialect)))
        created: list[int] = []
        for alarm in due:
            created.extend(_advance(session, alarm, now, settings, result))
        session.flush()
        return created, len(due)


def _advance(session: Session, alarm: Alarm, now: datetime, settings: ChainSettings,
             result: RunResult) -> list[int]:
    if alarm.policy is None:
        alarm.policy = snapshot_policy(session, alarm.kind)
        if alarm.policy is None:
            log.error("no escalation policy for this alarm kind; nobody is contacted",
                      extra={"alarm": alarm.id, "kind": alarm.kind})
            alarm.next_action_at = None
            return []
    policy = esc.policy_from_dict(alarm.policy)
    state = esc.ChainState(kind=alarm.kind, open=alarm.state == AlarmState.OPEN, step=alarm.step,
                           cycle=alarm.cycle, step_started_at=alarm.step_started_at,
                           family_handling=alarm.family_handling_at is not None)
    attempts = session.scalars(select(Attempt).where(Attempt.alarm_id == alarm.id,
                                                     Attempt.token == alarm.escalation_token,
                                                     Attempt.step >= 0)).all()
    decision = esc.decide(state, policy, [esc.AttemptView(a.channel, a.status) for a in attempts], now)
    if decision.action is esc.Action.STOP:
        alarm.next_action_at = None
        return []
    if decision.action is esc.Action.WAIT:
        alarm.next_action_at = decision.until
        return []
    alarm.step, alarm.cycle = decision.step, decision.cycle
    alarm.step_started_at = now
    alarm.escalation_token += 1
    alarm.next_action_at = decision.until
    if esc.calls_responders(policy, decision.step) and alarm.responders_called_at is None:
        alarm.responders_called_at = now
    step = policy.steps[decision.step]
    alarm_ops.note(session, alarm, now, action="step", actor="shouwang",
                   detail=f"step {decision.step + 1} ({step.name}), round {decision.cycle + 1}: {decision.reason}")
    result.started_steps.append((alarm.id, decision.step))
    return _create_attempts(session, alarm, decision.contacts, now, settings, step=decision.step)


@dataclass(frozen=True)
class Person:
    target: str
    name: str
    phone: str | None
    worker_id: int | None = None


def phone_link(settings: ChainSettings, worker_id: int, alarm_id: int, now: datetime) -> str:
    """The signed, expiring link to the alarm on the phone page, for one worker."""
    token = sign_link(settings.link_secret, worker_id, alarm_id, now + settings.link_ttl)
    return f"{settings.link_base}/m/a/{alarm_id}?t={token}"


def _create_attempts(session: Session, alarm: Alarm, contacts: Sequence[esc.Contact], now: datetime,
                     settings: ChainSettings, step: int) -> list[int]:
    params = alarm_params(session, alarm, now, settings.language)
    created: list[int] = []
    for contact in contacts:
        people = resolve_targets(session, alarm, contact)
        if not people:
            people = [Person(contact.target, contact.label(), None)]
        for person in people:
            for channel in contact.channels:
                own = dict(params)
                if channel == "sms" and person.worker_id is not None and settings.link_secret:
                    own["link"] = phone_link(settings, person.worker_id, alarm.id, now)
                attempt = Attempt(alarm_id=alarm.id, step=step, cycle=alarm.cycle, token=alarm.escalation_token,
                                  target=person.target, person=person.name, phone=person.phone, channel=channel,
                                  template=template_for(alarm.kind, person.target, channel), params=own,
                                  created_at=now, claimed_at=now, status=AttemptStatus.PENDING)
                reason = _skip_reason(session, person, channel, now, settings)
                if reason:
                    attempt.status, attempt.skip_reason, attempt.ended_at = AttemptStatus.SKIPPED, reason, now
                session.add(attempt)
                session.flush()
                if attempt.status == AttemptStatus.PENDING:
                    created.append(attempt.id)
    return created


def _skip_reason(session: Session, person: Person, channel: str, now: datetime, settings: ChainSettings) -> str | None:
    if not person.phone:
        return f"no phone number for {person.name}"
    sent = session.scalar(select(func.count()).select_from(Attempt).where(
        Attempt.phone == person.phone, Attempt.channel == channel, Attempt.status != AttemptStatus.SKIPPED,
        Attempt.created_at > now - timedelta(hours=1))) or 0
    return esc.cap_reason(sent, channel, settings.calls_per_hour if channel == "voice" else settings.sms_per_hour)


def template_for(kind: str, target: str, channel: str) -> str:
    if kind in (AlarmKind.DEVICE_OFFLINE, AlarmKind.LOW_BATTERY):
        return "maintenance_sms"
    if kind == AlarmKind.SYSTEM:
        return "system_call" if channel == "voice" else "system_sms"
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
    return {"code": alarm.code, "reason": alarm.reason, "name": resident.name if resident else "",
            "address": resident.address if resident else "", "phone": (resident.phone or "") if resident else "",
            "hours": hours, "link": ""}


def resolve_targets(session: Session, alarm: Alarm, contact: esc.Contact) -> list[Person]:
    """The people behind a policy target for this alarm's resident (grid, micro-grid, contacts)."""
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


# -- sending: outside any transaction ---------------------------------------------------------------------
def _send(engine: Engine, attempt_ids: Sequence[int], now: datetime, provider: Provider, result: RunResult) -> None:
    for attempt_id in attempt_ids:
        with Session(engine) as session:
            attempt = session.get(Attempt, attempt_id)
            if attempt is None or attempt.status != AttemptStatus.PENDING or attempt.phone is None:
                continue
            phone, channel = attempt.phone, attempt.channel
            message = Message(attempt.template, dict(attempt.params))
        try:
            if channel == "voice":
                provider_id = provider.call(attempt_id, phone, message)
            else:
                provider_id = provider.sms(attempt_id, phone, message)
        except NotifyError as exc:
            _record_failure(engine, attempt_id, now, exc)
            result.failed.append(attempt_id)
            continue
        except Exception as exc:  # a provider bug must not stop the chain; retried like a transient error
            log.exception("provider raised", extra={"attempt": attempt_id})
            _record_failure(engine, attempt_id, now, NotifyError(f"{type(exc).__name__}: {exc}", permanent=False))
            result.failed.append(attempt_id)
            continue
        with Session(engine) as session, session.begin():
            session.execute(update(Attempt).where(Attempt.id == attempt_id, Attempt.status == AttemptStatus.PENDING)
                            .values(status=AttemptStatus.QUEUED, provider=provider.name, provider_id=provider_id,
                                    sent_at=now, tries=Attempt.tries + 1))
        result.sent.append(attempt_id)


def _record_failure(engine: Engine, attempt_id: int, now: datetime, exc: NotifyError) -> None:
    with Session(engine) as session, session.begin():
        attempt = session.get(Attempt, attempt_id, with_for_update=True)
        if attempt is None:
            return
        attempt.tries += 1
        attempt.error = str(exc)[:2000]
        if exc.permanent:
            attempt.status, attempt.ended_at = AttemptStatus.FAILED, now
            log.error("call or SMS refused for good", extra={"attempt": attempt_id, "error": str(exc)})
            _maybe_step_over(session, attempt.alarm_id, now)
        else:
            attempt.claimed_at = now  # retried by the auditor after the backoff
            log.warning("call or SMS failed; will retry", extra={"attempt": attempt_id, "error": str(exc)})


def _claim_stuck_attempts(engine: Engine, now: datetime, settings: ChainSettings) -> list[int]:
    """Pending attempts that nobody handed to the provider in time (a crash, a transient failure):
    claim them with a conditional UPDATE (one process wins) and send them again, with backoff.
    An attempt queued without a claim (an outcome SMS) is sent at once."""
    claimed: list[int] = []
    with Session(engine) as session, session.begin():
        stuck = session.execute(select(Attempt.id, Attempt.tries).where(
            Attempt.status == AttemptStatus.PENDING,
            or_(Attempt.claimed_at.is_(None), Attempt.claimed_at <= now - settings.retry_after))).all()
        for attempt_id, tries in stuck:
            if tries >= settings.max_tries:
                session.execute(update(Attempt).where(Attempt.id == attempt_id).values(
                    status=AttemptStatus.FAILED, ended_at=now, error=f"gave up after {tries} tries"))
                continue
            threshold = now - settings.retry_after * (2 ** max(tries - 1, 0))
            won = session.execute(update(Attempt).where(
                Attempt.id == attempt_id, Attempt.status == AttemptStatus.PENDING,
                or_(Attempt.claimed_at.is_(None), Attempt.claimed_at <= threshold),
            ).values(claimed_at=now)).rowcount
            if won == 1:
                claimed.append(attempt_id)
    if claimed:
        log.warning("sending attempts left pending", extra={"attempts": claimed})
    return claimed


def _audit(engine: Engine, now: datetime, result: RunResult) -> None:
    """Every open alarm must have a valid next escalation time: re-arm any chain that lost it (a crash
    between transactions, a bug, a manual edit) or whose next time lies beyond its step's wait, so a
    chain never stalls silently."""
    with Session(engine) as session, session.begin():
        rows = session.scalars(claim(select(Alarm).where(Alarm.state == AlarmState.OPEN).where(
            Alarm.next_action_at.is_(None) | (Alarm.step >= 0)), session.get_bind().dialect)).all()
        for alarm in rows:
            if alarm.next_action_at is not None:
                if alarm.policy is None or alarm.step_started_at is None:
                    continue
                steps = alarm.policy.get("steps", [])
                if alarm.step < len(steps):
                    limit = alarm.step_started_at + esc.policy_from_dict(alarm.policy).steps[alarm.step].wait
                    if alarm.next_action_at > limit:
                        alarm.next_action_at = limit
                        result.rearmed.append(alarm.id)
                continue
            if alarm.policy is None:
                if snapshot_policy(session, alarm.kind) is None:
                    continue  # logged when the chain found no policy; nothing to re-arm with
            else:
                policy = esc.policy_from_dict(alarm.policy)
                finished = alarm.step == len(policy.steps) - 1 and policy.repeat_from is None
                if finished or (alarm.family_handling_at is not None and policy.family_ack_stops):
                    continue
            alarm.next_action_at = now
            result.rearmed.append(alarm.id)
            log.error("escalation chain had no next action; re-armed", extra={"alarm": alarm.id})


def _maybe_step_over(session: Session, alarm_id: int, now: datetime) -> None:
    """Every attempt of the current step ended unanswered: let the chain advance at once."""
    alarm = session.get(Alarm, alarm_id)
    if alarm is None or alarm.state != AlarmState.OPEN or alarm.step < 0:
        return
    attempts = session.scalars(select(Attempt).where(Attempt.alarm_id == alarm_id,
                                                     Attempt.token == alarm.escalation_token,
                                                     Attempt.step >= 0)).all()
    if esc.ended_unanswered([esc.AttemptView(a.channel, a.status) for a in attempts]):
        alarm.next_action_at = now


# -- provider events ------------------------------------------------------------------------------------
def handle_events(engine: Engine, events: Sequence[ProviderEvent], now: datetime,
                  settings: ChainSettings) -> Message | None:
    """Apply the provider's events; returns the reply to say or send back (for an SMS), if any."""
    reply: Message | None = None
    for event in events:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            if isinstance(event, CallStatus | SmsStatus):
                _status(session, event, now)
            elif isinstance(event, Keypress):
                reply = _keypress(session, event, now, settings)
            elif isinstance(event, InboundSms):
                reply = _inbound_sms(session, event, now, settings)
    return reply


def _find_attempt(session: Session, attempt_id: int | None, provider_id: str | None) -> Attempt | None:
    attempt = session.get(Attempt, attempt_id, with_for_update=True) if attempt_id is not None else None
    if attempt is None and provider_id:
        attempt = session.scalars(select(Attempt).where(Attempt.provider_id == provider_id)).first()
    return attempt


def _status(session: Session, event: CallStatus | SmsStatus, now: datetime) -> None:
    attempt = _find_attempt(session, event.attempt_id, event.provider_id)
    if attempt is None:
        log.warning("status for an unknown attempt", extra={"provider_id": event.provider_id})
        return
    if attempt.status in esc.VOICE_ENDED | esc.SMS_ENDED | {AttemptStatus.SKIPPED}:
        return  # statuses may arrive out of order; the first end stands
    attempt.status = event.status
    if esc.AttemptView(attempt.channel, event.status).ended:
        attempt.ended_at = now
        alarm = session.get(Alarm, attempt.alarm_id)
        if alarm is not None:  # on the alarm's history and the live stream: "call 李娜: no-answer"
            noun = "call" if attempt.channel == "voice" else "SMS"
            alarm_ops.note(session, alarm, now, action="attempt", actor=attempt.person,
                           detail=f"{noun} {attempt.person} ({attempt.target}): {event.status}")
        _maybe_step_over(session, attempt.alarm_id, now)


def _keypress(session: Session, event: Keypress, now: datetime, settings: ChainSettings) -> Message | None:
    attempt = _find_attempt(session, event.attempt_id, event.provider_id)
    if attempt is None:
        return None
    attempt.digits = event.digits[:10]
    meaning = esc.classify_keypress(attempt.target, event.digits)
    alarm = session.get(Alarm, attempt.alarm_id, with_for_update=True)
    if meaning is None or alarm is None:
        return None
    _apply(session, alarm, meaning, f"{attempt.person} ({attempt.target}, keypress)", now, settings)
    return Message("call_thanks")


def _apply(session: Session, alarm: Alarm, meaning: str, who: str, now: datetime, settings: ChainSettings) -> None:
    if alarm.state == AlarmState.RESOLVED:
        return
    if meaning == "confirmed_fine":
        resolve_and_notify(session, alarm, now, by=who, outcome=Outcome.CONFIRMED_FINE_BY_PHONE, note=None,
                           settings=settings)
    elif meaning == "acknowledged":
        alarm_ops.acknowledge(session, alarm, now, by=who)
        alarm.next_action_at = None
    elif meaning == "family_handling" and alarm.family_handling_at is None:
        alarm.family_handling_at, alarm.family_handling_by = now, who
        alarm_ops.note(session, alarm, now, action="family_handling", actor=who, detail="family is handling it")


@dataclass(frozen=True)
class Sender:
    kind: str  # a worker role, family, resident or unknown
    name: str
    resident_id: int | None = None


def _inbound_sms(session: Session, event: InboundSms, now: datetime, settings: ChainSettings) -> Message:
    """"1 A37" acknowledges alarm A37; a bare "1" the open alarm sent to this person, and with several
    open the reply lists them instead of guessing."""
    words = event.body.strip().split()
    if not words or words[0] not in ("1", "１"):
        return Message("reply_help")
    sender_phone = _normalise(event.sender)
    sender = _who(session, sender_phone)
    if sender.kind == "unknown":
        log.warning("SMS reply from an unknown number", extra={"sender": sender_phone})
        return Message("reply_none")
    sent_to_sender = select(Attempt.alarm_id).where(Attempt.phone == sender_phone)
    candidates = session.scalars(select(Alarm).where(Alarm.id.in_(sent_to_sender), Alarm.state == AlarmState.OPEN)
                                 .order_by(Alarm.id.desc())).all()
    code = CODE.search(event.body)
    alarm: Alarm | None
    if code:
        alarm = session.get(Alarm, int(code.group(1)), with_for_update=True)
        allowed = alarm is not None and (alarm in candidates or sender.kind in esc.RESPONDERS)
        if alarm is None or not allowed or alarm.state != AlarmState.OPEN:
            return Message("reply_none")
    elif len(candidates) > 1:
        codes = "、".join(a.code for a in candidates[:10])
        return Message("reply_list", {"codes": codes, "first": candidates[0].code})
    elif candidates:
        alarm = session.get(Alarm, candidates[0].id, with_for_update=True)
    else:
        return Message("reply_none")
    assert alarm is not None
    if sender.kind in ("resident", "family") and alarm.resident_id != sender.resident_id:
        return Message("reply_none")
    meaning = {"resident": "confirmed_fine", "family": "family_handling"}.get(sender.kind, "acknowledged")
    _apply(session, alarm, meaning, f"{sender.name} ({sender.kind}, SMS)", now, settings)
    return Message("reply_family" if meaning == "family_handling" else "reply_ack", {"code": alarm.code})


def _who(session: Session, phone: str) -> Sender:
    worker = session.scalars(select(Worker).where(Worker.phone == phone, Worker.active.is_(True))).first()
    if worker is not None:
        return Sender(worker.role, worker.name)
    contact = session.scalars(select(Contact).where(Contact.phone == phone)).first()
    if contact is not None:
        return Sender("family", contact.name, contact.resident_id)
    resident = session.scalars(select(Resident).where(Resident.phone == phone)).first()
    if resident is not None:
        return Sender("resident", resident.name, resident.id)
    return Sender("unknown", phone)


def _normalise(phone: str) -> str:
    return re.sub(r"[\s\-()]", "", phone)


# -- resolution with the family's outcome SMS -------------------------------------------------------------
def resolve_and_notify(session: Session, alarm: Alarm, now: datetime, *, by: str, outcome: Outcome,
                       note: str | None, settings: ChainSettings, window_s: float | None = None) -> None:
    """Resolve a resident alarm and queue the outcome SMS to the family (sent by the next run)."""
    if window_s is None and alarm.resident_id is not None:
        window_s = _window_seconds(session, alarm.resident_id, settings.default_window)
    alarm_ops.resolve(session, alarm, now, by=by, outcome=outcome, note=note, window_s=window_s)
    alarm.next_action_at = None
    queue_outcome_sms(session, alarm, now, settings)


def queue_outcome_sms(session: Session, alarm: Alarm, now: datetime, settings: ChainSettings) -> None:
    if alarm.resident_id is None or alarm.kind not in (AlarmKind.INACTIVITY, AlarmKind.PANIC):
        return
    words = OUTCOME_WORDS.get(alarm.outcome or "", {}).get(settings.language, alarm.outcome or "")
    params = {**alarm_params(session, alarm, now, settings.language), "outcome": words, "note": alarm.note or ""}
    for contact in session.scalars(select(Contact).where(Contact.resident_id == alarm.resident_id)
                                   .order_by(Contact.priority, Contact.id)):
        session.add(Attempt(alarm_id=alarm.id, step=-1, cycle=alarm.cycle, token=0, target="family",
                            person=contact.name, phone=contact.phone, channel="sms", template="outcome_sms",
                            params=params, created_at=now, claimed_at=None, status=AttemptStatus.PENDING))


def _window_seconds(session: Session, resident_id: int, default: timedelta) -> float | None:
    resident = session.get(Resident, resident_id)
    if resident is None:
        return None
    limits = resident_limits(session, resident, rules.Limits(window=default, early_warning=default * 5 / 7))
    return limits.window.total_seconds()


def default_policies_file() -> Path:
    return Path(config.__file__).parent / "escalation.toml"


def load_policy_file(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The policies of ``config/escalation.toml`` (or ``path``), checked: a broken file fails loudly."""
    source = Path(path) if path else default_policies_file()
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    policies = data.get("policies", [])
    for definition in policies:
        esc.policy_from_dict(definition)
    return policies


# -- one-click responses from the centre -------------------------------------------------------------------
def dispatch_now(session: Session, alarm: Alarm, now: datetime, *, by: str) -> None:
    """Skip ahead to the first step that calls responders (the grid worker), starting now."""
    if alarm.state != AlarmState.OPEN or alarm.policy is None:
        return
    policy = esc.policy_from_dict(alarm.policy)
    first = next((i for i in range(len(policy.steps)) if esc.calls_responders(policy, i)), None)
    if first is None:
        return
    # make the chain believe the step before the first responder step has just run out
    alarm.step = first - 1 if first > 0 else len(policy.steps) - 1
    alarm.step_started_at = now - policy.steps[alarm.step].wait
    alarm.next_action_at = now
    alarm_ops.note(session, alarm, now, action="dispatch", actor=by, detail="dispatch the grid worker now")


def call_family_now(session: Session, alarm: Alarm, now: datetime, *, by: str, settings: ChainSettings) -> int:
    """Call every family contact of the alarm's resident now, outside the chain's steps."""
    if alarm.resident_id is None:
        return 0
    params = alarm_params(session, alarm, now, settings.language)
    count = 0
    for contact in session.scalars(select(Contact).where(Contact.resident_id == alarm.resident_id)
                                   .order_by(Contact.priority, Contact.id)):
        session.add(Attempt(alarm_id=alarm.id, step=-1, cycle=alarm.cycle, token=0, target="family",
                            person=contact.name, phone=contact.phone, channel="voice", template="alarm_call",
                            params=params, created_at=now, claimed_at=None, status=AttemptStatus.PENDING))
        count += 1
    alarm_ops.note(session, alarm, now, action="call_family", actor=by, detail=f"calling {count} family contact(s)")
    return count
