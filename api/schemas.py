"""Request and response bodies of the API (the OpenAPI document is generated from them: every field says
what it means, so ``/docs`` is the reference)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

from alerts.models import HUMAN_OUTCOMES, Outcome
from alerts.refusals import InvalidValue

TIME = "UTC, ISO 8601"


def _chosen_by_a_person(outcome: Outcome) -> Outcome:
    if outcome not in HUMAN_OUTCOMES:
        raise InvalidValue("outcome", choices=", ".join(sorted(HUMAN_OUTCOMES)))
    return outcome


# what a person may choose; the others (activity_resumed, ...) are set by Shouwang itself
PersonOutcome = Annotated[Outcome, AfterValidator(_chosen_by_a_person),
                          WithJsonSchema({"type": "string", "enum": sorted(HUMAN_OUTCOMES)})]


class DeviceOut(BaseModel):
    id: int = Field(description="Shouwang's id of the device")
    external_id: str = Field(description="the id the device reports under (its MQTT topic or payload id)")
    kind: str = Field(description="motion, door, bed, toilet, panic, power, ...")
    room: str | None = Field(None, description="bathroom, bedroom, kitchen, living_room, entrance; null: unknown")
    online: bool = Field(description="Shouwang's judgement: false once the device has sent nothing for "
                         "rules.device_offline_after, or reported itself offline past the grace time")
    battery: int | None = Field(description="last reported battery level in percent; null if never reported")
    last_seen_at: datetime | None = Field(description=f"the last message of any kind from it ({TIME})")
    availability: str | None = Field(description="what the device (or its bridge's last will) last said of "
                                     "itself: 'online', 'offline', or null if it never said; `online` is the "
                                     "verdict that counts")
    clock_skew_count: int = Field(0, description="reports whose device time was further ahead than the allowed "
                                  "clock skew (stored at receive time instead); SPEC section 2")
    last_clock_skew_at: datetime | None = Field(None, description="when the last such report was received")


class ResidentOut(BaseModel):
    id: int = Field(description="Shouwang's id of the resident (in paths such as /api/residents/{id})")
    ref: str | None = Field(description="your own stable id: the community file's or CSV import's `ref`")
    name: str
    address: str
    latitude: float | None = Field(description="WGS-84")
    longitude: float | None = Field(description="WGS-84")
    phone: str | None = Field(description="the resident's own phone (the check call goes there)")
    micro_grid_id: int | None = Field(description="the micro-grid (building) the resident belongs to")
    status: str = Field(description="the most urgent state that holds: alarm > warning > away / offline > ok")
    last_activity_at: datetime | None = Field(description=f"the last activity seen in the home ({TIME})")
    due_at: datetime | None = Field(description=f"when the inactivity alarm is raised if nothing moves ({TIME})")
    window_hours: float = Field(description="the inactivity window in force (resident's, grid's or the default)")
    away_until: datetime | None = Field(description=f"away mode ends then ({TIME}); no inactivity alarm meanwhile")
    away_until_activity: bool = Field(description="away mode ends with the next activity of the home")
    consent_at: date | None = Field(description="date of the resident's consent to monitoring (PIPL)")
    devices: list[DeviceOut] = Field(description="the resident's devices")


class PersonOut(BaseModel):
    name: str
    phone: str
    relation: str | None = Field(None, description="a contact's relation to the resident (family, neighbour)")
    priority: int | None = Field(None, description="a contact's place in the calling order (1 first)")
    role: str | None = Field(None, description="a worker's role: grid_worker, micro_grid_worker, supervisor")


class SignOfLifeIn(BaseModel):
    source: Literal["meal_card", "worker_visit", "phone_call", "family_visit"] = Field(
        description="meal_card: a swipe at the community canteen (刷卡助餐); worker_visit, phone_call, "
                    "family_visit: logged by a worker or the centre")
    at: datetime | None = Field(None, description="when it happened (with a zone); now when left out; a time "
                                                  "in the future counts as now")
    note: str | None = Field(None, max_length=500, description="anything worth knowing, e.g. 她接了电话")


class SignOfLifeOut(BaseModel):
    id: int = Field(description="Shouwang's id of the report")
    resident_id: int = Field(description="the resident it was reported for")
    at: datetime = Field(description=f"when it happened ({TIME})")
    source: str = Field(description="meal_card, worker_visit, phone_call or family_visit")
    note: str | None = Field(description="what the reporter added")
    recorded_by: str = Field(description="who reported it (a worker, the centre, an integration such as the canteen)")


class ResidentCardOut(ResidentOut):
    birth_year: int | None
    age: int | None = Field(description="years, from the birth year and the service clock's year")
    grid: str | None = Field(description="name of the resident's grid")
    micro_grid: str | None = Field(description="name of the resident's micro-grid")
    contacts: list[PersonOut] = Field(description="family contacts in calling order")
    workers: list[PersonOut] = Field(description="the active workers of the resident's grid and micro-grid")
    routine: str | None = Field(None, description="the time-window rule that applies (the resident's, else "
                                                  "the grid's), e.g. 07:00-10:00")
    rhythm: str | None = Field(None, description="the learned daily rhythm in words, e.g. \"usually up by "
                                                 "06:40; today nothing yet\" (none until 7 good days are known)")
    signs_of_life: list[SignOfLifeOut] = Field(default_factory=list, description="the latest signs of life "
                                                                                   "from outside the home")


class TransitionOut(BaseModel):
    at: datetime = Field(description=TIME)
    action: str = Field(description="what happened: opened, acknowledged, accepted, arrived, resolved, ...")
    actor: str = Field(description="who: an account, a worker, a phone number, or 'system'")
    detail: str | None = Field(description="free text: the channel, the outcome, a note")


class AttemptOut(BaseModel):
    id: int
    step: int | None = Field(description="escalation step (1-based) the call or SMS belongs to")
    round: int = Field(description="escalation round (the chain starts over when it ran out)")
    target: str = Field(description="whom the step aims at: resident, grid_worker, family, supervisor, ...")
    person: str = Field(description="the person's name")
    phone: str | None = Field(description="the number called or sent to")
    channel: str = Field(description="call or sms")
    template: str = Field(description="the message text's template")
    status: str = Field(description="pending, sent, answered, no-answer, busy, failed, skipped, ...")
    created_at: datetime = Field(description=TIME)
    sent_at: datetime | None = Field(description=TIME)
    ended_at: datetime | None = Field(description=TIME)
    provider_id: str | None = Field(description="the provider's id (Twilio CallSid / MessageSid)")
    digits: str | None = Field(description="keys pressed on the call, if any")
    skip_reason: str | None = Field(description="why a step was not sent (rate limit, no phone, ...)")
    error: str | None = Field(description="the provider's error, when sending failed")
    tries: int = Field(description="sending tries so far")


class BlindOut(BaseModel):
    what: str = Field(description="database unreachable, scheduler not ticking, ingest behind, system alarm open")
    since: datetime | None = Field(description="the service clock when it began (the last instant known, when "
                                   "the database is gone)")
    since_wall: float = Field(description="Unix time (real) when this process noticed")
    detail: str = Field("", description="more about it (the error, the lag, the open alarms' reasons)")


class AlarmOut(BaseModel):
    id: int
    code: str = Field(description="short code quoted in SMS; a reply with it acknowledges")
    kind: str = Field(description="inactivity, panic, routine, rhythm, early_warning, device_offline, low_battery, "
                                  "clock_skew or system")
    severity: str = Field(description="critical, high or low")
    state: str = Field(description="open, acknowledged or resolved")
    resident_id: int | None = Field(description="null for a system alarm")
    device_id: int | None = Field(description="the device of a device alarm (offline, battery, panic)")
    system_key: str | None = Field(description="what a system alarm is about (e.g. the broker)")
    reason: str = Field(description="why it opened, worded in notify.language, local time")
    reason_code: str | None = Field(None, description="the reason for programs (alerts/wording.py REASONS)")
    reason_params: dict[str, Any] | None = Field(None, description="the reason's parameters (instants in UTC)")
    devices_offline: bool = Field(description="the home's devices were offline when it opened (may be a fault)")
    opened_at: datetime = Field(description=TIME)
    last_activity_at: datetime | None = Field(description=f"the home's last activity before it opened ({TIME})")
    activity_seen_at: datetime | None = Field(description=f"activity seen since it opened ({TIME})")
    acknowledged_at: datetime | None = Field(description=TIME)
    acknowledged_by: str | None = Field(description="who acknowledged: an account, a worker or a phone number")
    resolved_at: datetime | None = Field(description=TIME)
    resolved_by: str | None = Field(description="who resolved it, or 'system'")
    outcome: str | None = Field(description="how it ended (resident_fine, needed_help, activity_resumed, ...)")
    outcome_text: str | None = Field(None, description="the outcome worded in notify.language")
    note: str | None = Field(description="free text left by the people who handled it")
    auto_resolved: bool = Field(description="ended by Shouwang itself (activity, device back, battery ok)")
    step: int | None = Field(None, description="escalation step reached (1-based)")
    round: int = Field(1, description="escalation round (1-based)")
    responders_called_at: datetime | None = Field(None, description=f"when the chain reached workers ({TIME})")
    next_action_at: datetime | None = Field(None, description=f"the chain's next step is due then ({TIME})")
    family_handling_at: datetime | None = Field(None, description=f"a family member said they handle it ({TIME})")
    family_handling_by: str | None = Field(None, description="the family member who handles it")
    accepted_at: datetime | None = Field(None, description=f"a worker said 'I am going' ({TIME})")
    arrived_at: datetime | None = Field(None, description=f"a worker arrived at the door ({TIME})")
    arrived_by: str | None = Field(None, description="the worker who arrived")
    resident_name: str | None = None
    possibly_infrastructure: bool = Field(False, description="raised while an infrastructure incident covered "
                                          "the resident's home: the family is held back (see hold_until)")
    incident_id: int | None = Field(None, description="the infrastructure alarm that covered the home")
    hold_until: datetime | None = Field(None, description="no family call before this (possibly infrastructure)")
    scope: dict[str, Any] | None = Field(None, description="an infrastructure incident: its group and the "
                                         "residents and devices it covers")
    transitions: list[TransitionOut] | None = Field(None, description="history (one alarm's view only)")
    attempts: list[AttemptOut] | None = Field(None, description="calls and SMS (one alarm's view only)")


class NoteIn(BaseModel):
    note: str | None = Field(None, max_length=2000, description="free text kept on the alarm")


class ResolveIn(BaseModel):
    outcome: PersonOutcome = Field(description="one of: " + ", ".join(sorted(HUMAN_OUTCOMES)))
    note: str | None = Field(None, max_length=2000, description="free text kept on the alarm")


class QuarantineOut(BaseModel):
    id: int
    received_at: datetime = Field(description=TIME)
    topic: str = Field(description="the MQTT topic the message came on")
    reason: str = Field(description="why it was refused: bad_json, unknown_device, bad_timestamp, ...")
    detail: str = Field(description="the reason in words")
    payload_preview: str = Field(description="the start of the payload, as text")
    payload_size: int = Field(description="the payload's size in bytes")
    device_external_id: str | None = Field(description="the device id found in it, if any (adopt it)")


class HealthOut(BaseModel):
    status: str = Field(description="ok, or degraded (then the answer is 503)")
    now: datetime = Field(description=f"the service clock ({TIME}); in the demo it runs fast")
    broker: dict[str, object] | None = Field(description="this process's MQTT consumer: connected, caught_up, "
                                             "lag, ...; null without ingest")
    last_tick_age_seconds: float | None = Field(description="real seconds since the rules last ran")
    database_ok: bool = Field(description="the database answered")
    open_system_alarms: int = Field(description="open alarms about Shouwang itself (broker down, ...)")
    blind: list[BlindOut] = Field(default_factory=list, description="what this process knows is blind "
                                  "(alerts.blind): database unreachable, scheduler not ticking, ingest behind, "
                                  "an open system alarm")
