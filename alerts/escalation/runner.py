"""Escalation chains on the database: claim due alarms, start steps, place calls and SMS through the
provider, take the provider's events (status, keypress, SMS reply) and audit that no chain stalls.

Exactly once across restarts and processes: an alarm's step is claimed with its row locked
(``FOR UPDATE SKIP LOCKED``) and a token bumped in the same transaction; the attempt rows are committed
(``pending``) before the provider is called, outside any transaction. A crash in between leaves a
pending attempt that the auditor claims with a conditional UPDATE and sends again: a second call beats
a missing one.
"""

from __future__ import annotations

import json
import logging
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Engine, Text, cast, or_, select, update
from sqlalchemy.orm import Session

import config
from alerts import alarms as alarm_ops
from alerts.alarms import snapshot_policy
from alerts.db import changed, claim, insert_ignoring_conflicts
from alerts.escalation import policy as esc
from alerts.escalation.notifiers.base import (
    NotifyError,
    Provider,
)
from alerts.escalation.replies import handle_events, maybe_step_over
from alerts.escalation.targets import (
    ChainSettings,
    Person,
    alarm_params,
    phone_link,
    resolve_targets,
    send_params,
    skip_reason,
    template_for,
)
from alerts.escalation.templates import Message
from alerts.models import (
    Alarm,
    AlarmKind,
    AlarmState,
    Attempt,
    AttemptStatus,
    EscalationPolicy,
    table_of,
)

log = logging.getLogger(__name__)

CLAIM_BATCH = 200
PACED_BATCH = 20  # a run after one the provider's rate held back
HOLD_RECHECK = timedelta(minutes=5)
RUN_SECONDS = 0.5  # one run's wall time at most: it yields (the next run goes on where it stopped)
AUDIT_EVERY = 30.0  # paced runs: seconds of real time between audits of every chain's next time


@dataclass
class RunResult:
    started_steps: list[tuple[int, int]] = field(default_factory=list)  # (alarm id, step)
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    rearmed: list[int] = field(default_factory=list)
    deferred: bool = False  # the provider's rate (``Pace``) held steps back: the next runs place them


# -- policies ---------------------------------------------------------------------------------------------
def seed_policies(session: Session, definitions: Sequence[dict[str, Any]], now: datetime) -> int:
    """Insert the default policies that the database does not have yet (edits are never overwritten).
    Several processes starting together may seed at once: the unique name decides, nobody fails."""
    have = set(session.scalars(select(EscalationPolicy.name)))
    added = 0
    for definition in definitions:
        policy = esc.policy_from_dict(definition)  # refuses a broken default loudly
        if policy.name not in have:
            statement = insert_ignoring_conflicts(table_of(EscalationPolicy), session.get_bind().dialect, ["name"])
            added += changed(session, statement.values(name=policy.name, definition=policy.to_dict(),
                                                       updated_at=now, updated_by="seed"))
    return added


# -- the runner (called by the tick) ----------------------------------------------------------------------
def run(engine: Engine, now: datetime, provider: Provider, settings: ChainSettings,
        pace: esc.Pace | None = None) -> RunResult:
    """One run of the chain at ``now``. With ``pace`` (a process's runs) the steps start at the provider's
    rate, panic alarms first, the run yields after ``RUN_SECONDS`` and the audit runs every
    ``AUDIT_EVERY`` seconds; without it every due step starts now (tests, one-off runs)."""
    result = RunResult()
    started = time.monotonic()
    events = provider.poll(now)
    if events:
        handle_events(engine, events, now, settings)
    whole = pace is None or pace.audited_at is None or pace.clock() - pace.audited_at >= AUDIT_EVERY
    _audit(engine, now, result, whole)
    if whole and pace is not None:
        pace.audited_at = pace.clock()
    # a run after one the provider's rate held back claims few: most of what it would claim waits again
    batch = PACED_BATCH if pace is not None and pace.held_back else CLAIM_BATCH
    for _ in range(50):
        created, claimed = _advance_due(engine, now, settings, result, pace, batch)
        _send(engine, created, now, provider, result, settings)
        if claimed < batch or result.deferred or (pace is not None and time.monotonic() - started > RUN_SECONDS):
            break
    if pace is not None:
        pace.held_back = result.deferred
    _send(engine, _claim_stuck_attempts(engine, now, settings, pace), now, provider, result, settings)
    return result


def _claim_due(session: Session, now: datetime, batch: int) -> list[Alarm]:
    """Up to ``batch`` alarms whose chain is due, panic alarms first, each set in the order of its index
    (``ix_alarms_panic_next_action_at``, ``ix_alarms_next_action_at``: no sort of every due chain, which a
    mass silence makes 100,000)."""
    due = select(Alarm).where(Alarm.next_action_at.isnot(None), Alarm.next_action_at <= now)
    dialect = session.get_bind().dialect
    claimed = list(session.scalars(claim(due.where(Alarm.kind == AlarmKind.PANIC)
                                         .order_by(Alarm.next_action_at, Alarm.id).limit(batch), dialect)))
    if len(claimed) < batch:
        claimed += session.scalars(claim(due.where(Alarm.kind != AlarmKind.PANIC)
                                         .order_by(Alarm.next_action_at, Alarm.id).limit(batch - len(claimed)),
                                         dialect))
    return claimed


def _advance_due(engine: Engine, now: datetime, settings: ChainSettings, result: RunResult,
                 pace: esc.Pace | None = None, batch: int = CLAIM_BATCH) -> tuple[list[int], int]:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        due = _claim_due(session, now, batch)
        created: list[int] = []
        for alarm in due:
            placed = _advance(session, alarm, now, settings, result, pace)
            if placed is None:  # the provider's rate: this one and the rest wait for the next run
                result.deferred = True
                break
            created.extend(placed)
        session.flush()
        return created, len(due)


def _advance(session: Session, alarm: Alarm, now: datetime, settings: ChainSettings,
             result: RunResult, pace: esc.Pace | None = None) -> list[int] | None:
    if alarm.policy is None:
        alarm.policy = snapshot_policy(session, alarm.kind)
        if alarm.policy is None:
            log.error("no escalation policy for this alarm kind; nobody is contacted",
                      extra={"alarm": alarm.id, "kind": alarm.kind})
            alarm.next_action_at = None
            return []
    policy = esc.policy_from_dict(alarm.policy)
    _explained_hold(session, alarm, now)
    state = esc.ChainState(kind=alarm.kind, open=alarm.state == AlarmState.OPEN, step=alarm.step,
                           cycle=alarm.cycle, step_started_at=alarm.step_started_at,
                           family_handling=alarm.family_handling_at is not None, hold_until=alarm.hold_until)
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
    channels = [channel for contact in decision.contacts for channel in contact.channels]
    if pace is not None and not pace.allows(channels, urgent=alarm.kind == AlarmKind.PANIC):
        return None  # nothing changed: the step starts when the provider's rate allows
    alarm.step, alarm.cycle = decision.step, decision.cycle
    alarm.step_started_at = now
    alarm.escalation_token += 1
    alarm.next_action_at = decision.until
    if esc.calls_responders(policy, decision.step) and alarm.responders_called_at is None:
        alarm.responders_called_at = now
    step = policy.steps[decision.step]
    alarm_ops.record(session, alarm, now, action="step", actor="shouwang",
                   detail=f"step {decision.step + 1} ({step.name}), round {decision.cycle + 1}: {decision.reason}")
    result.started_steps.append((alarm.id, decision.step))
    return _create_attempts(session, alarm, decision.contacts, now, settings, step=decision.step, pace=pace)


def _explained_hold(session: Session, alarm: Alarm, now: datetime) -> None:
    """A possibly-infrastructure alarm whose hold has run out while its incident is open and acknowledged
    (a person at the centre explained the outage and is on it): the family stays held while that lasts,
    looked at again every few minutes. The incident's end, or "not infrastructure: escalate", ends it."""
    if alarm.hold_until is None or alarm.incident_id is None or now < alarm.hold_until:
        return
    incident = session.get(Alarm, alarm.incident_id)
    if incident is not None and incident.state == AlarmState.ACKNOWLEDGED:
        alarm.hold_until = now + HOLD_RECHECK


def _create_attempts(session: Session, alarm: Alarm, contacts: Sequence[esc.Contact], now: datetime,
                     settings: ChainSettings, step: int, pace: esc.Pace | None = None) -> list[int]:
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
                    own.update(phone_link(settings, person.worker_id, alarm.id))
                attempt = Attempt(alarm_id=alarm.id, step=step, cycle=alarm.cycle, token=alarm.escalation_token,
                                  target=person.target, person=person.name, phone=person.phone, channel=channel,
                                  template=template_for(alarm.kind, person.target, channel), params=own,
                                  created_at=now, claimed_at=now, status=AttemptStatus.PENDING)
                reason = skip_reason(session, person, channel, now, settings)
                if reason:
                    attempt.status, attempt.skip_reason, attempt.ended_at = AttemptStatus.SKIPPED, reason, now
                session.add(attempt)
                session.flush()
                if attempt.status == AttemptStatus.PENDING:
                    created.append(attempt.id)
                    if pace is not None:
                        pace.spend(channel)
    return created


# -- sending: outside any transaction ---------------------------------------------------------------------
def _send(engine: Engine, attempt_ids: Sequence[int], now: datetime, provider: Provider, result: RunResult,
          settings: ChainSettings) -> None:
    for attempt_id in attempt_ids:
        with Session(engine) as session:
            attempt = session.get(Attempt, attempt_id)
            if attempt is None or attempt.status != AttemptStatus.PENDING or attempt.phone is None:
                continue
            phone, channel = attempt.phone, attempt.channel
            message = Message(attempt.template, send_params(session, settings, dict(attempt.params)))
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
            maybe_step_over(session, attempt.alarm_id, now)
        else:
            attempt.claimed_at = now  # retried by the auditor after the backoff
            log.warning("call or SMS failed; will retry", extra={"attempt": attempt_id, "error": str(exc)})


def _claim_stuck_attempts(engine: Engine, now: datetime, settings: ChainSettings,
                          pace: esc.Pace | None = None) -> list[int]:
    """Pending attempts that nobody handed to the provider in time (a crash, a transient failure):
    claim them with a conditional UPDATE (one process wins) and send them again, with backoff.
    An attempt queued without a claim (an outcome SMS) is sent at once."""
    claimed: list[int] = []
    with Session(engine) as session, session.begin():
        stuck = session.execute(select(Attempt.id, Attempt.tries, Attempt.channel).where(
            Attempt.status == AttemptStatus.PENDING,
            or_(Attempt.claimed_at.is_(None), Attempt.claimed_at <= now - settings.retry_after))).all()
        for attempt_id, tries, channel in stuck:
            if tries >= settings.max_tries:
                session.execute(update(Attempt).where(Attempt.id == attempt_id).values(
                    status=AttemptStatus.FAILED, ended_at=now, error=f"gave up after {tries} tries"))
                continue
            threshold = now - settings.retry_after * (2 ** max(tries - 1, 0))
            won = changed(session, update(Attempt).where(
                Attempt.id == attempt_id, Attempt.status == AttemptStatus.PENDING,
                or_(Attempt.claimed_at.is_(None), Attempt.claimed_at <= threshold),
            ).values(claimed_at=now))
            if won == 1:
                claimed.append(attempt_id)
                if pace is not None:
                    pace.spend(channel)
    if claimed:
        log.warning("sending attempts left pending", extra={"attempts": claimed})
    return claimed


def _audit(engine: Engine, now: datetime, result: RunResult, whole: bool = True) -> None:
    """Every open alarm must have a valid next escalation time: re-arm any chain that lost it (a crash
    between transactions, a bug, a manual edit) or whose next time lies beyond its step's wait, so a
    chain never stalls silently.

    The chains are read without a lock (after a mass silence ``whole`` reads 100,000 of them: locked, a
    person's acknowledgement would wait for the audit); each chain found wrong is set by a compare-and-set
    on the next time read, so a chain the runner moved meanwhile is left as the runner left it."""
    with Session(engine) as session, session.begin():
        # a chain without a next time, every run; one whose next time lies ahead of its step's wait (a
        # manual edit), on ``whole`` runs. A chain due now is not stalled (it runs, at the provider's rate)
        candidates: ColumnElement[bool] = Alarm.next_action_at.is_(None)
        if whole:
            candidates = candidates | ((Alarm.step >= 0) & (Alarm.next_action_at > now))
        rows = session.execute(select(
            Alarm.id, Alarm.kind, Alarm.next_action_at, Alarm.step, Alarm.step_started_at, Alarm.hold_until,
            Alarm.family_handling_at, cast(Alarm.policy, Text)).where(Alarm.state == AlarmState.OPEN)
            .where(candidates)).all()
        policies: dict[str, esc.Policy] = {}  # each policy text read once (alarms copy a few definitions)

        def parsed(text: str) -> esc.Policy:
            if text not in policies:
                policies[text] = esc.policy_from_dict(json.loads(text))
            return policies[text]

        for alarm_id, kind, next_at, step, step_started_at, hold_until, family_handling_at, text in rows:
            policy: str | None = None if text in (None, "null") else text  # SQLite: a JSON null as text
            if next_at is not None:
                if policy is None or step_started_at is None:
                    continue
                steps = parsed(policy).steps
                if step >= len(steps):
                    continue
                wait = steps[step].wait
                limit = step_started_at + wait
                if hold_until is not None:  # a family hold: the chain waits for it on purpose
                    limit = max(limit, hold_until)
                if next_at > limit and _rearm(session, alarm_id, next_at, limit):
                    result.rearmed.append(alarm_id)
                continue
            if policy is None:
                if snapshot_policy(session, kind) is None:
                    continue  # logged when the chain found no policy; nothing to re-arm with
            else:
                definition = parsed(policy)
                finished = step == len(definition.steps) - 1 and definition.repeat_from is None
                stopped = not definition.enabled or (family_handling_at is not None and definition.family_ack_stops)
                if finished or stopped:
                    continue
            if _rearm(session, alarm_id, None, now):
                result.rearmed.append(alarm_id)
                log.error("escalation chain had no next action; re-armed", extra={"alarm": alarm_id})


def _rearm(session: Session, alarm_id: int, was: datetime | None, at: datetime) -> bool:
    """Set an open alarm's next action time to ``at`` if it is still ``was`` (the runner did not move it)."""
    still = Alarm.next_action_at.is_(None) if was is None else Alarm.next_action_at == was
    return changed(session, update(Alarm).where(Alarm.id == alarm_id, Alarm.state == AlarmState.OPEN, still)
                   .values(next_action_at=at).execution_options(synchronize_session=False)) > 0


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


