"""Escalation policies and the chain's state machine. Pure: (alarm, policy snapshot, attempts, now) ->
what to do next. :mod:`alerts.escalation.runner` does the database and the provider calls.

A policy is an ordered list of steps. A step names whom to contact and how (in parallel) and how long
to wait. The step ends when a person acknowledges (the chain stops), when every attempt of the step has
ended unanswered, or when its wait runs out, whichever is first; then the next step starts. After the
last step the chain starts again from ``repeat_from``: a resident alarm's chain never stops on its own.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alerts.refusals import Refusal
from config.settings import parse_duration

TARGETS = ("resident", "family", "grid_worker", "micro_grid_worker", "supervisor")
CHANNELS = ("voice", "sms")
# who can acknowledge for the community: their keypress, reply or tap stops the chain
RESPONDERS = frozenset({"grid_worker", "micro_grid_worker", "supervisor"})
VOICE_ENDED = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
SMS_ENDED = frozenset({"sent", "delivered", "undelivered", "failed"})
# low-key notices (the learned rhythm, the fixed window's early warning): SMS to the community's people
# only, sent once; never a call, never the family or the resident (:func:`_notice_rules`)
NOTICE_POLICIES = frozenset({"rhythm", "early_warning"})


class PolicyError(Refusal, ValueError):
    """A policy definition that cannot work; the message says what to fix (:mod:`alerts.refusals`)."""


@dataclass(frozen=True)
class Contact:
    """Whom a step contacts and how. ``family`` takes the contact of priority ``rank`` (1 = first)."""

    target: str
    channels: tuple[str, ...]
    rank: int = 1

    def label(self) -> str:
        return f"family:{self.rank}" if self.target == "family" else self.target


@dataclass(frozen=True)
class Step:
    name: str
    contacts: tuple[Contact, ...]
    wait: timedelta
    check_call: bool = False  # the resident's "press 1 if you are fine": skipped for panic alarms


@dataclass(frozen=True)
class Policy:
    name: str
    steps: tuple[Step, ...]
    repeat_from: int | None = None  # 0-based step to start again from after the last; None: stop
    family_ack_stops: bool = False  # a family member's keypress stops the community's steps
    # the infrastructure variant: no step that calls family starts before the alarm's hold ends
    hold: timedelta | None = None
    enabled: bool = True  # switched off: an alarm that copied it contacts nobody (early_warning: none is raised)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "repeat_from": None if self.repeat_from is None else self.repeat_from + 1,
            "family_ack_stops": self.family_ack_stops,
            "enabled": self.enabled,
            **({"hold": f"{int(self.hold.total_seconds())}s"} if self.hold is not None else {}),
            "steps": [
                {"name": s.name, "wait": f"{int(s.wait.total_seconds())}s", "check_call": s.check_call,
                 "contacts": [{"target": c.target, "channels": list(c.channels),
                               **({"rank": c.rank} if c.target == "family" else {})} for c in s.contacts]}
                for s in self.steps
            ],
        }


def policy_from_dict(data: Mapping[str, Any]) -> Policy:
    """Read a policy (as stored, or from ``config/escalation.toml``); ``repeat_from`` is 1-based there."""
    try:
        steps = tuple(_step(item, i) for i, item in enumerate(data["steps"]))
        name = str(data["name"])
    except KeyError as exc:
        raise PolicyError("policy_needs", field=exc.args[0]) from exc
    if not steps:
        raise PolicyError("policy_no_steps", name=name)
    repeat = data.get("repeat_from")
    if repeat is not None and not 1 <= int(repeat) <= len(steps):
        raise PolicyError("policy_repeat_from", name=name, count=len(steps))
    hold = None
    if data.get("hold") is not None:
        try:
            hold = parse_duration(data["hold"])
        except ValueError as exc:
            raise PolicyError("policy_hold", name=name, why=str(exc)) from exc
        if hold <= timedelta(0):
            raise PolicyError("policy_hold_positive", name=name)
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise PolicyError("policy_enabled", name=name, value=enabled)
    if name in NOTICE_POLICIES:
        _notice_rules(name, steps, repeat)
    return Policy(name=name, steps=steps, repeat_from=None if repeat is None else int(repeat) - 1,
                  family_ack_stops=bool(data.get("family_ack_stops", False)), hold=hold, enabled=enabled)


def _notice_rules(name: str, steps: tuple[Step, ...], repeat: Any) -> None:
    """A notice is low-key: an SMS to the community's people, once; never a call, never the family."""
    if repeat is not None:
        raise PolicyError("notice_repeats", name=name)
    for index, step in enumerate(steps, start=1):
        for contact in step.contacts:
            if contact.target in ("family", "resident"):
                raise PolicyError("notice_target", name=name, step=index, target=contact.target)
            if "voice" in contact.channels:
                raise PolicyError("notice_voice", name=name, step=index, target=contact.target)


def _step(item: Mapping[str, Any], index: int) -> Step:
    contacts = []
    for raw in item.get("contacts", []):
        target = raw.get("target")
        if target not in TARGETS:
            raise PolicyError("step_target", step=index + 1, choices=", ".join(TARGETS), target=target)
        channels = tuple(raw.get("channels", ["voice"]))
        if not channels or any(c not in CHANNELS for c in channels):
            raise PolicyError("step_channels", step=index + 1, channels=list(channels))
        contacts.append(Contact(target=target, channels=channels, rank=int(raw.get("rank", 1))))
    if not contacts:
        raise PolicyError("step_nobody", step=index + 1)
    try:
        wait = parse_duration(item.get("wait", "5m"))
    except ValueError as exc:
        raise PolicyError("step_wait", step=index + 1, why=str(exc)) from exc
    if wait <= timedelta(0):
        raise PolicyError("step_wait_positive", step=index + 1)
    return Step(name=str(item.get("name", f"step {index + 1}")), contacts=tuple(contacts), wait=wait,
                check_call=bool(item.get("check_call", False)))


# -- the chain ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AttemptView:
    """What the engine needs to know of one attempt of the current step."""

    channel: str
    status: str

    @property
    def ended(self) -> bool:
        if self.status == "skipped":
            return True
        return self.status in (VOICE_ENDED if self.channel == "voice" else SMS_ENDED)


@dataclass(frozen=True)
class ChainState:
    kind: str  # alarm kind
    open: bool  # not acknowledged, not resolved
    step: int  # -1 before the first step
    cycle: int
    step_started_at: datetime | None
    family_handling: bool = False
    # a possibly-infrastructure alarm: no family before this (None: no hold, or released)
    hold_until: datetime | None = None


class Action(enum.Enum):
    START = "start"  # start ``step`` (of ``cycle``) now
    WAIT = "wait"  # nothing to do until ``until``
    STOP = "stop"  # the chain is over (acknowledged, resolved, or a policy without repeat)


@dataclass(frozen=True)
class Decision:
    action: Action
    step: int = -1
    cycle: int = 0
    until: datetime | None = None
    contacts: tuple[Contact, ...] = field(default_factory=tuple)
    reason: str = ""


def ended_unanswered(attempts: list[AttemptView]) -> bool:
    """Every attempt of the step has ended without an acknowledgement, so the step may end before its
    wait. Only a step that calls someone ends early: an SMS is answered at the reader's pace, so an
    SMS-only step (a maintenance notice) runs its whole wait."""
    calls = [a for a in attempts if a.channel == "voice"]
    return bool(calls) and all(a.ended for a in attempts)


def first_step(policy: Policy, kind: str) -> int:
    """Panic alarms skip the check call: someone pressed the button, asking is a waste of minutes."""
    if kind == "panic":
        for index, step in enumerate(policy.steps):
            if not step.check_call:
                return index
    return 0


def following(policy: Policy, step: int, cycle: int) -> tuple[int, int] | None:
    if step + 1 < len(policy.steps):
        return step + 1, cycle
    if policy.repeat_from is None:
        return None
    return policy.repeat_from, cycle + 1


def decide(state: ChainState, policy: Policy, attempts: Iterable[AttemptView], now: datetime) -> Decision:
    """The next action of the chain at ``now``, given the attempts of its current step."""
    if not state.open:
        return Decision(Action.STOP, reason="acknowledged or resolved")
    if not policy.enabled:
        return Decision(Action.STOP, reason="the policy is switched off")
    if state.family_handling and policy.family_ack_stops:
        return Decision(Action.STOP, reason="family handling")
    if state.step < 0:
        start = first_step(policy, state.kind)
        return _start(policy, start, 0, now, "alarm opened")
    assert state.step_started_at is not None
    current = policy.steps[state.step]
    deadline = state.step_started_at + current.wait
    all_ended = ended_unanswered(list(attempts))
    if now < deadline and not all_ended:
        return Decision(Action.WAIT, step=state.step, cycle=state.cycle, until=deadline)
    nxt = following(policy, state.step, state.cycle)
    if nxt is None:
        return Decision(Action.STOP, reason="last step done; the policy does not repeat")
    why = "every attempt ended unanswered" if all_ended and now < deadline else "the wait ran out"
    if state.hold_until is not None and now < state.hold_until and calls_family(policy, nxt[0]):
        return Decision(Action.WAIT, step=state.step, cycle=state.cycle, until=state.hold_until,
                        reason="family held: possibly infrastructure")
    return _start(policy, nxt[0], nxt[1], now, why)


def _start(policy: Policy, step: int, cycle: int, now: datetime, reason: str) -> Decision:
    chosen = policy.steps[step]
    return Decision(Action.START, step=step, cycle=cycle, until=now + chosen.wait, contacts=chosen.contacts,
                    reason=reason)


def calls_family(policy: Policy, step: int) -> bool:
    return any(c.target == "family" for c in policy.steps[step].contacts)


def calls_responders(policy: Policy, step: int) -> bool:
    """A step that contacts anyone but the resident: from then on the alarm is red and new activity no
    longer resolves it on its own."""
    return any(c.target != "resident" for c in policy.steps[step].contacts)


def cap_reason(sent_last_hour: int, channel: str, cap: int) -> str | None:
    """The per-person cap: a capped person is skipped with this reason (the chain goes on)."""
    if sent_last_hour >= cap:
        noun = "calls" if channel == "voice" else "SMS"
        return f"capped: {sent_last_hour} {noun} in the last hour (limit {cap})"
    return None


def classify_keypress(target: str, digits: str | None) -> str | None:
    """What a keypress on a call means: ``confirmed_fine`` (the resident), ``acknowledged`` (a worker
    or the supervisor), ``family_handling`` (a family member); None when it is not a 1."""
    if (digits or "").strip() != "1":
        return None
    if target == "resident":
        return "confirmed_fine"
    if target in RESPONDERS:
        return "acknowledged"
    if target == "family":
        return "family_handling"
    return None


class Pace:
    """The provider's rate: attempts placed per second, per channel (a token bucket on real time, read
    from ``clock``). A provider account takes so many calls and SMS a second (Twilio: 1 call a second
    unless raised, 1 SMS a second from one long number); a mass silence opens more chains at once than
    that, so the chain places them at the rate, panic alarms first, instead of flooding the provider and
    starving the watch. ``burst`` attempts of a channel may go at once after a quiet spell. A rate of
    None: no limit (a test, a run outside a process)."""

    def __init__(self, per_second: Mapping[str, float | None], burst: int, clock: Any) -> None:
        self.rates = {channel: per_second.get(channel) for channel in CHANNELS}
        self.burst = max(1, burst)
        self.clock = clock
        self._tokens = {channel: float(self.burst) for channel in CHANNELS}
        self._at = {channel: clock() for channel in CHANNELS}
        self.audited_at: float | None = None  # when the runner last audited the chains (on ``clock``)
        self.held_back = False  # the last run left due steps to the rate's next runs

    def _fill(self, channel: str) -> float:
        rate = self.rates.get(channel)
        if rate is None:
            return float("inf")
        at = self.clock()
        self._tokens[channel] = min(float(self.burst), self._tokens[channel] + max(0.0, at - self._at[channel]) * rate)
        self._at[channel] = at
        return self._tokens[channel]

    def allows(self, channels: Iterable[str], urgent: bool = False) -> bool:
        """Whether a step placing on these channels may start now (one token each; a step that places
        several attempts may run the bucket into debt, which the next steps wait out). ``urgent`` (a
        panic alarm) may run it into debt of up to ``burst`` more: a mass silence's backlog never holds
        a panic's calls back."""
        floor = 1.0 - self.burst if urgent else 1.0
        return all(self._fill(channel) >= floor for channel in set(channels))

    def spend(self, channel: str, count: int = 1) -> None:
        if self.rates.get(channel) is not None and count:
            self._fill(channel)
            self._tokens[channel] -= count

    def wait_seconds(self, channel: str) -> float:
        """How long until the next attempt of ``channel`` may go (0 when one may now)."""
        rate = self.rates.get(channel)
        tokens = self._fill(channel)
        return 0.0 if rate is None or tokens >= 1.0 else (1.0 - tokens) / rate
