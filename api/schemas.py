"""Request and response bodies of the API (the OpenAPI document is generated from them)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from alerts.models import HUMAN_OUTCOMES, Outcome

PersonOutcome = Outcome  # the values a person may choose are checked against HUMAN_OUTCOMES


class DeviceOut(BaseModel):
    id: int
    external_id: str
    kind: str
    online: bool
    battery: int | None
    last_seen_at: datetime | None
    availability: str | None
    clock_skew_count: int = Field(0, description="reports whose device time was further ahead than the allowed "
                                  "clock skew (stored at receive time instead); SPEC section 2")
    last_clock_skew_at: datetime | None = Field(None, description="when the last such report was received")


class ResidentOut(BaseModel):
    id: int
    name: str
    address: str
    latitude: float | None
    longitude: float | None
    phone: str | None
    micro_grid_id: int | None
    status: str = Field(description="alarm > warning > away/offline > ok: the most urgent state that holds")
    last_activity_at: datetime | None
    due_at: datetime | None = Field(description="when the inactivity alarm is raised if nothing moves")
    window_hours: float
    away_until: datetime | None
    away_until_activity: bool
    consent_at: date | None
    devices: list[DeviceOut]


class PersonOut(BaseModel):
    name: str
    phone: str
    relation: str | None = None
    priority: int | None = None
    role: str | None = None


class SignOfLifeIn(BaseModel):
    source: Literal["meal_card", "worker_visit", "phone_call", "family_visit"] = Field(
        description="meal_card: a swipe at the community canteen (刷卡助餐); worker_visit, phone_call, "
                    "family_visit: logged by a worker or the centre")
    at: datetime | None = Field(None, description="when it happened (with a zone); now when left out; a time "
                                                  "in the future counts as now")
    note: str | None = Field(None, max_length=500)


class SignOfLifeOut(BaseModel):
    id: int
    resident_id: int
    at: datetime
    source: str
    note: str | None
    recorded_by: str


class ResidentCardOut(ResidentOut):
    birth_year: int | None
    age: int | None
    grid: str | None
    micro_grid: str | None
    contacts: list[PersonOut]
    workers: list[PersonOut]
    routine: str | None = Field(None, description="the time-window rule that applies (the resident's, else "
                                                  "the grid's), e.g. 07:00-10:00")
    rhythm: str | None = Field(None, description="the learned daily rhythm in words, e.g. \"usually up by "
                                                 "06:40; today nothing yet\" (none until 7 good days are known)")
    signs_of_life: list[SignOfLifeOut] = Field(default_factory=list, description="the latest signs of life "
                                                                                   "from outside the home")


class TransitionOut(BaseModel):
    at: datetime
    action: str
    actor: str
    detail: str | None


class AttemptOut(BaseModel):
    id: int
    step: int | None
    round: int
    target: str
    person: str
    phone: str | None
    channel: str
    template: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    ended_at: datetime | None
    provider_id: str | None
    digits: str | None
    skip_reason: str | None
    error: str | None
    tries: int


class AlarmOut(BaseModel):
    id: int
    code: str
    kind: str
    severity: str
    state: str
    resident_id: int | None
    device_id: int | None
    system_key: str | None
    reason: str
    devices_offline: bool
    opened_at: datetime
    last_activity_at: datetime | None
    activity_seen_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: str | None
    note: str | None
    auto_resolved: bool
    step: int | None = Field(None, description="escalation step reached (1-based)")
    round: int = 1
    responders_called_at: datetime | None = None
    next_action_at: datetime | None = None
    family_handling_at: datetime | None = None
    family_handling_by: str | None = None
    accepted_at: datetime | None = None
    arrived_at: datetime | None = None
    arrived_by: str | None = None
    resident_name: str | None = None
    transitions: list[TransitionOut] | None = None
    attempts: list[AttemptOut] | None = None


class NoteIn(BaseModel):
    note: str | None = Field(None, max_length=2000)


class ResolveIn(BaseModel):
    outcome: Outcome = Field(description="one of: " + ", ".join(sorted(HUMAN_OUTCOMES)))
    note: str | None = Field(None, max_length=2000)


class QuarantineOut(BaseModel):
    id: int
    received_at: datetime
    topic: str
    reason: str
    detail: str
    payload_preview: str
    payload_size: int
    device_external_id: str | None


class HealthOut(BaseModel):
    status: str
    now: datetime
    broker: dict[str, object] | None
    last_tick_age_seconds: float | None
    database_ok: bool
    open_system_alarms: int
