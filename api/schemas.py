"""Request and response bodies of the API (the OpenAPI document is generated from them)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

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


class ResidentCardOut(ResidentOut):
    birth_year: int | None
    age: int | None
    grid: str | None
    micro_grid: str | None
    contacts: list[PersonOut]
    workers: list[PersonOut]


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
    reason: str = Field(description="why it opened, worded in notify.language, local time")
    reason_code: str | None = Field(None, description="the reason for programs (alerts/wording.py REASONS)")
    reason_params: dict[str, Any] | None = Field(None, description="the reason's parameters (instants in UTC)")
    devices_offline: bool
    opened_at: datetime
    last_activity_at: datetime | None
    activity_seen_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: str | None
    outcome_text: str | None = Field(None, description="the outcome worded in notify.language")
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
