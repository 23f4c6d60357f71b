"""All tables of Shouwang, one model per table (SQLAlchemy 2, typed declarative).

Times are stored as UTC (see :class:`alerts.db.UTCDateTime`). Enumerations are stored as short strings
so that SQLite and PostgreSQL hold the same values and a migration adds a value without DDL.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from alerts.db import UTCDateTime

# BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite so autoincrement works there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


def table_of(model: type[Base]) -> Table:
    """The mapped table of a model, typed as a ``Table`` (``__table__`` is typed as any ``FromClause``)."""
    return Base.metadata.tables[str(model.__tablename__)]


class DeviceKind(enum.StrEnum):
    MOTION = "motion"
    DOOR = "door"
    BUTTON = "button"
    METER = "meter"


class EventKind(enum.StrEnum):
    """What a stored observation was. The first four are activity when ``is_activity`` is set."""

    MOTION = "motion"
    DOOR = "door"
    BUTTON = "button"
    METER = "meter"
    HEARTBEAT = "heartbeat"
    BATTERY = "battery"
    AVAILABILITY = "availability"
    STATE = "state"  # a report that is not an observation (e.g. Zigbee2MQTT's own occupancy: false)


class AlarmKind(enum.StrEnum):
    INACTIVITY = "inactivity"
    PANIC = "panic"
    DEVICE_OFFLINE = "device_offline"
    LOW_BATTERY = "low_battery"
    CLOCK_SKEW = "clock_skew"  # a device keeps sending times from the future (maintenance, SPEC section 2)
    SYSTEM = "system"
    INFRASTRUCTURE = "infrastructure"  # a correlated silence: a gateway, building, grid or community dark
    ROUTINE = "routine"  # no activity inside a time window ("did not get up"): a resident alarm
    RHYTHM = "rhythm"  # today departs from the learned rhythm: a low-key notice, amber
    EARLY_WARNING = "early_warning"  # the fixed window's early-warning stage (opt-in): a low-key notice, amber


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    LOW = "low"


class AlarmState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Outcome(enum.StrEnum):
    # chosen by a person
    RESIDENT_FINE = "resident_fine"
    CONFIRMED_FINE_BY_PHONE = "confirmed_fine_by_phone"
    NEEDED_HELP = "needed_help"
    TAKEN_TO_HOSPITAL = "taken_to_hospital"
    AWAY_WITH_FAMILY = "away_with_family"
    DEVICE_FAULT = "device_fault"
    OTHER = "other"
    # set by Shouwang itself (auto-resolved)
    ACTIVITY_RESUMED = "activity_resumed"
    DEVICE_BACK = "device_back"
    BATTERY_OK = "battery_ok"
    SYSTEM_RECOVERED = "system_recovered"
    REPORTING_AGAIN = "reporting_again"  # an infrastructure incident's group is heard from again
    MERGED = "merged"  # an infrastructure incident taken into a larger one
    SUPERSEDED = "superseded"  # an early-warning notice taken over by the resident's alarm


HUMAN_OUTCOMES = frozenset(
    {
        Outcome.RESIDENT_FINE,
        Outcome.CONFIRMED_FINE_BY_PHONE,
        Outcome.NEEDED_HELP,
        Outcome.TAKEN_TO_HOSPITAL,
        Outcome.AWAY_WITH_FAMILY,
        Outcome.DEVICE_FAULT,
        Outcome.OTHER,
    }
)


class WorkerRole(enum.StrEnum):
    GRID_WORKER = "grid_worker"
    MICRO_GRID_WORKER = "micro_grid_worker"
    SUPERVISOR = "supervisor"


class Community(Base):
    __tablename__ = "communities"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    grids: Mapped[list[Grid]] = relationship(back_populates="community")


class Grid(Base):
    """网格: a part of the community with one grid worker."""

    __tablename__ = "grids"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    inactivity_window_s: Mapped[int | None] = mapped_column(Integer)
    early_warning_s: Mapped[int | None] = mapped_column(Integer)
    routine_window: Mapped[str | None] = mapped_column(String(11))  # "07:00-10:00", local time
    # dwell limits (alerts/dwell.py): bathroom occupied / bathroom door closed with motion inside; NULL: none
    bathroom_dwell_s: Mapped[int | None] = mapped_column(Integer)
    bathroom_door_dwell_s: Mapped[int | None] = mapped_column(Integer)
    community: Mapped[Community] = relationship(back_populates="grids")
    micro_grids: Mapped[list[MicroGrid]] = relationship(back_populates="grid")


class MicroGrid(Base):
    """微网格: a building or a few, with a micro-grid worker."""

    __tablename__ = "micro_grids"
    __table_args__ = (UniqueConstraint("grid_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    grid: Mapped[Grid] = relationship(back_populates="micro_grids")


class Resident(Base):
    """An elder living alone. ``due_at`` is the stored inactivity deadline the rule tick polls for;
    it is NULL while an inactivity alarm is open or the resident is away until next activity. It is not
    indexed: database triggers keep :class:`Deadline`, the narrow queue the tick claims from, at or
    before it, so the many writes of ``due_at`` (every activity) leave every index alone."""

    __tablename__ = "residents"
    __table_args__ = (
        Index("ix_residents_routine_due_at", "routine_due_at", postgresql_where=text("routine_due_at IS NOT NULL"),
              sqlite_where=text("routine_due_at IS NOT NULL")),
        Index("ix_residents_rhythm_due_at", "rhythm_due_at", postgresql_where=text("rhythm_due_at IS NOT NULL"),
              sqlite_where=text("rhythm_due_at IS NOT NULL")),
        Index("ix_residents_dwell_due_at", "dwell_due_at", postgresql_where=text("dwell_due_at IS NOT NULL"),
              sqlite_where=text("dwell_due_at IS NOT NULL")),
        Index("ix_residents_early_warning_due_at", "early_warning_due_at",
              postgresql_where=text("early_warning_due_at IS NOT NULL"),
              sqlite_where=text("early_warning_due_at IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    micro_grid_id: Mapped[int | None] = mapped_column(ForeignKey("micro_grids.id", ondelete="SET NULL"))
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(500), default="")
    latitude: Mapped[float | None] = mapped_column(Float)  # WGS-84
    longitude: Mapped[float | None] = mapped_column(Float)  # WGS-84
    phone: Mapped[str | None] = mapped_column(String(40))
    inactivity_window_s: Mapped[int | None] = mapped_column(Integer)
    early_warning_s: Mapped[int | None] = mapped_column(Integer)
    away_until: Mapped[datetime | None] = mapped_column()
    away_until_activity: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_at: Mapped[date | None] = mapped_column(Date)
    last_activity_at: Mapped[datetime | None] = mapped_column()
    # restart point of the window: a resolution that found the resident well, the end of away mode
    watch_from: Mapped[datetime | None] = mapped_column()
    due_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    # time-window rule ("07:00-10:00"; NULL: the grid's, if any) and the end of the next window to judge
    routine_window: Mapped[str | None] = mapped_column(String(11))
    routine_due_at: Mapped[datetime | None] = mapped_column()
    # the learned daily rhythm (alerts/rhythm.py, as a dict) and when the tick next looks at it
    rhythm: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    rhythm_due_at: Mapped[datetime | None] = mapped_column()
    # dwell limits (NULL: the grid's, if any) and when the tick next looks at them (alerts/dwell.py)
    bathroom_dwell_s: Mapped[int | None] = mapped_column(Integer)
    bathroom_door_dwell_s: Mapped[int | None] = mapped_column(Integer)
    dwell_due_at: Mapped[datetime | None] = mapped_column()
    # when the tick next looks whether the early-warning stage began (alerts/detection.py early_warning_step)
    early_warning_due_at: Mapped[datetime | None] = mapped_column()
    micro_grid: Mapped[MicroGrid | None] = relationship()
    devices: Mapped[list[Device]] = relationship(back_populates="resident")
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="resident", order_by="Contact.priority", cascade="all, delete-orphan"
    )


class Deadline(Base):
    """The queue of inactivity deadlines: one row per resident whose ``due_at`` is set, at that instant or
    earlier. Written by database triggers on ``residents`` (migration 0015: a deadline set, brought
    forward or cleared, whatever statement or process does it) and by the tick for the residents it
    claimed (:func:`alerts.inactivity._requeue`: a deadline that moved later); the tick finds and claims
    due residents through ``ix_deadlines_due_at``. A deadline moved later by activity leaves the queue
    alone, so ingest's writes never touch it."""

    __tablename__ = "deadlines"
    __table_args__ = (Index("ix_deadlines_due_at", "due_at", "resident_id"),)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), primary_key=True,
                                             autoincrement=False)
    due_at: Mapped[datetime] = mapped_column()


class GatewayKind(enum.StrEnum):
    ZIGBEE2MQTT = "zigbee2mqtt"  # a bridge: ``<base>/bridge/state`` says online/offline
    NATIVE = "native"  # a gateway named by native devices (payload field or device setting)
    OTHER = "other"


class Gateway(Base):
    """What a group of devices hangs off: a Zigbee2MQTT bridge (its base topic), a home hub, a building's
    uplink. Its own online/offline report opens an infrastructure incident at once."""

    __tablename__ = "gateways"
    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)  # Zigbee2MQTT: the base topic
    kind: Mapped[str] = mapped_column(String(20), default=GatewayKind.ZIGBEE2MQTT)
    name: Mapped[str] = mapped_column(String(200), default="")
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id", ondelete="SET NULL"))
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    availability: Mapped[str | None] = mapped_column(String(10))  # its last own report: online / offline
    availability_at: Mapped[datetime | None] = mapped_column()
    last_seen_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        Index(
            "ix_devices_offline_due_at",
            "offline_due_at",
            postgresql_where=text("offline_due_at IS NOT NULL"),
            sqlite_where=text("offline_due_at IS NOT NULL"),
        ),
        # room in each page for the new version of a row updated by ingest (a HOT update: no index entry)
        {"postgresql_with": {"fillfactor": 70}},
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    resident_id: Mapped[int | None] = mapped_column(
        ForeignKey("residents.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), default="")
    battery: Mapped[int | None] = mapped_column(Integer, index=True)
    last_seen_at: Mapped[datetime | None] = mapped_column()
    # the device's own availability/LWT report ("online"/"offline") and when it last changed
    availability: Mapped[str | None] = mapped_column(String(10))
    availability_at: Mapped[datetime | None] = mapped_column()
    # when the offline rule is next due for this device; NULL while it is offline
    offline_due_at: Mapped[datetime | None] = mapped_column()
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    occupied: Mapped[bool | None] = mapped_column(Boolean)  # last reported occupancy / contact closed
    room: Mapped[str | None] = mapped_column(String(20))  # alerts.dwell.Room: bathroom, bedroom, ...; NULL: unknown
    # reports whose device time was further ahead than rules.clock_skew (stored at receive time), and the last
    clock_skew_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_clock_skew_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateways.id", ondelete="SET NULL"), index=True)
    resident: Mapped[Resident | None] = relationship(back_populates="devices")


class Contact(Base):
    """A family member (or neighbour) to call, in priority order."""

    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    relation: Mapped[str] = mapped_column(String(50), default="family")
    phone: Mapped[str] = mapped_column(String(40))
    priority: Mapped[int] = mapped_column(Integer, default=1)
    resident: Mapped[Resident] = relationship(back_populates="contacts")


class Worker(Base):
    """A grid worker (grid), a micro-grid worker (micro-grid) or a centre supervisor (community)."""

    __tablename__ = "workers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(40), unique=True)
    role: Mapped[str] = mapped_column(String(30))
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id", ondelete="SET NULL"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id", ondelete="SET NULL"))
    micro_grid_id: Mapped[int | None] = mapped_column(ForeignKey("micro_grids.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    pin_hash: Mapped[str | None] = mapped_column(String(200))  # argon2; set by an admin
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column()


class UserRole(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    SCREEN = "screen"
    INTEGRATION = "integration"  # another system (the canteen's card system): may report signs of life only


class User(Base):
    """A centre account: admin, operator, or a screen (read-only). Workers sign in with phone + PIN."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()


class ApiToken(Base):
    """A session or a long-lived screen token. Only its SHA-256 is stored; it expires."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    alarm_id: Mapped[int | None] = mapped_column(Integer)  # a session opened by an SMS link: that alarm only


class SignInFailure(Base):
    """Failed sign-ins of one account from one client address, counted atomically; at the limit the pair
    is locked, each lock longer than the last (back-off), so a stranger's guesses never lock the owner
    out from their own address."""

    __tablename__ = "sign_in_failures"
    account: Mapped[str] = mapped_column(String(150), primary_key=True)  # user:<name> / worker:<phone>
    source: Mapped[str] = mapped_column(String(64), primary_key=True)  # the client address
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lockouts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column()


class WebhookReceipt(Base):
    """A provider event already handled (an SMS's MessageSid, a call's CallSid + digits): a replay of a
    signed webhook finds it here and changes nothing."""

    __tablename__ = "webhook_receipts"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column()


class Event(Base):
    """A stored observation or health report from a device. Raw rows are pruned after the retention;
    nothing derives a resident's state from them (the resident and device rows carry it)."""

    __tablename__ = "events"
    __table_args__ = (
        Index(
            "uq_events_device_event_uid",
            "device_id",
            "event_uid",
            unique=True,
            postgresql_where=text("event_uid IS NOT NULL"),
            sqlite_where=text("event_uid IS NOT NULL"),
        ),
        Index("ix_events_resident_occurred", "resident_id", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # no foreign key (a trigger call per inserted row): ingest locks the devices it records events for,
    # and alerts.registry.admin.delete_device deletes a device's events with it
    device_id: Mapped[int] = mapped_column(Integer)
    resident_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    is_activity: Mapped[bool] = mapped_column(Boolean)
    occurred_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(index=True)
    device_time: Mapped[datetime | None] = mapped_column()
    clock_skew: Mapped[bool] = mapped_column(Boolean, default=False)
    value: Mapped[str | None] = mapped_column(String(100))
    event_uid: Mapped[str | None] = mapped_column(String(100))
    # hash of (topic, packet id, payload): recognises a broker redelivery (DUP) of a stored message
    delivery_key: Mapped[str] = mapped_column(String(32), index=True)
    topic: Mapped[str] = mapped_column(String(300))


class Alarm(Base):
    """An alarm and its state machine: open -> acknowledged -> resolved (or open -> resolved).

    ``open_key`` is set while the alarm is not resolved and is unique, so the database itself
    guarantees at most one open alarm per resident and kind (per device for maintenance alarms,
    per key for system alarms), whatever the number of processes.
    """

    __tablename__ = "alarms"
    __table_args__ = (
        Index("ix_alarms_state_opened", "state", "opened_at"),
        # the escalation's claims (alerts.escalation.runner._claim_due): each reads its index in order
        Index(
            "ix_alarms_next_action_at",
            "next_action_at",
            "id",
            postgresql_where=text("next_action_at IS NOT NULL"),
            sqlite_where=text("next_action_at IS NOT NULL"),
        ),
        Index(
            "ix_alarms_panic_next_action_at",
            "next_action_at",
            "id",
            postgresql_where=text("kind = 'panic' AND next_action_at IS NOT NULL"),
            sqlite_where=text("kind = 'panic' AND next_action_at IS NOT NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(15), default=AlarmState.OPEN)
    open_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    system_key: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")  # worded in notify.language when it opened
    reason_code: Mapped[str | None] = mapped_column(String(40))  # alerts.wording.REASONS
    reason_params: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    devices_offline: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[datetime] = mapped_column()
    last_activity_at: Mapped[datetime | None] = mapped_column()  # the resident's, when it opened
    activity_seen_at: Mapped[datetime | None] = mapped_column()  # movement after responders were called
    responders_called_at: Mapped[datetime | None] = mapped_column()
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column()
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(Text)
    auto_resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    # escalation: the policy copied in when the alarm opened, where the chain stands, when it acts next
    policy: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    step: Mapped[int] = mapped_column(Integer, default=-1, server_default="-1")
    cycle: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    step_started_at: Mapped[datetime | None] = mapped_column()
    next_action_at: Mapped[datetime | None] = mapped_column()
    escalation_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    family_handling_at: Mapped[datetime | None] = mapped_column()
    family_handling_by: Mapped[str | None] = mapped_column(String(200))
    accepted_at: Mapped[datetime | None] = mapped_column()  # a worker tapped "I'm going"
    arrived_at: Mapped[datetime | None] = mapped_column()  # on site: the 45-minute service level
    arrived_by: Mapped[str | None] = mapped_column(String(200))
    # infrastructure incidents: the group and what it covers ({"group", "label", "residents", "devices",
    # "grids", "community_id", "silent_since"}); resident alarms raised inside one point at it
    scope: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    possibly_infrastructure: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    incident_id: Mapped[int | None] = mapped_column(Integer)  # the infrastructure alarm covering it
    hold_until: Mapped[datetime | None] = mapped_column()  # family is not called before this
    resident: Mapped[Resident | None] = relationship()
    device: Mapped[Device | None] = relationship()
    transitions: Mapped[list[AlarmTransition]] = relationship(
        back_populates="alarm", order_by="AlarmTransition.id", cascade="all, delete-orphan"
    )

    @property
    def code(self) -> str:
        """The short code people quote in SMS replies, e.g. ``A37``."""
        return f"A{self.id}"


class AttemptStatus(enum.StrEnum):
    PENDING = "pending"  # committed, not yet accepted by the provider (a crash here is retried)
    QUEUED = "queued"  # accepted by the provider
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"  # a call that ended; without a digit it acknowledges nothing (voicemail)
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"
    SENT = "sent"  # an SMS handed on
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    SKIPPED = "skipped"  # never sent: capped, no number, ...


class EscalationPolicy(Base):
    """An escalation policy as data: ordered steps (see :mod:`alerts.escalation`). Seeded from
    ``config/escalation.toml``; editable through the API. An alarm copies it when it opens."""

    __tablename__ = "escalation_policies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    updated_by: Mapped[str] = mapped_column(String(200))


class Attempt(Base):
    """One call or SMS to one person for one alarm: who, channel, when, provider id, result.

    The row is committed (``pending``) before the provider is called, so a crash in between leaves a
    visible row that the auditor retries: a second call beats a missing one.
    """

    __tablename__ = "escalation_attempts"
    __table_args__ = (Index("ix_attempts_status_claimed", "status", "claimed_at"),
                      Index("ix_attempts_phone_created", "phone", "created_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)  # -1: a notice outside the chain (outcome, reply)
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    token: Mapped[int] = mapped_column(Integer, default=0)
    target: Mapped[str] = mapped_column(String(40))  # resident / family / grid_worker / ...
    person: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(10))  # voice / sms
    template: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default=AttemptStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column()
    claimed_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    provider: Mapped[str | None] = mapped_column(String(30))
    provider_id: Mapped[str | None] = mapped_column(String(100), index=True)
    digits: Mapped[str | None] = mapped_column(String(10))
    skip_reason: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    tries: Mapped[int] = mapped_column(Integer, default=0)


class AlarmTransition(Base):
    """Who did what to an alarm, and when: one row per transition or noted fact."""

    __tablename__ = "alarm_transitions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column()
    action: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)
    alarm: Mapped[Alarm] = relationship(back_populates="transitions")


class QuarantinedMessage(Base):
    """A message Shouwang could not accept, kept with the reason for an admin to inspect."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    topic: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(40), index=True)
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # truncated to a few KiB
    payload_size: Mapped[int] = mapped_column(Integer)
    device_external_id: Mapped[str | None] = mapped_column(String(200), index=True)
    delivery_key: Mapped[str] = mapped_column(String(32), index=True)
    adopted_at: Mapped[datetime | None] = mapped_column()


class QuarantineOverflow(Base):
    """What the quarantine did not keep: per hour, source (the device's external id, else the topic) and
    reason, how many messages and bytes were only counted (see ``alerts.recording.QUARANTINE_KEEP_PER_SOURCE``)."""

    __tablename__ = "quarantine_overflow"
    __table_args__ = (UniqueConstraint("hour", "source", "reason", name="uq_quarantine_overflow_hour_source"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hour: Mapped[datetime] = mapped_column(index=True)  # start of the hour (UTC)
    source: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(40))
    dropped: Mapped[int] = mapped_column(BigInteger)
    dropped_bytes: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[datetime] = mapped_column()


class SignOfLife(Base):
    """A sign of life from outside the home: a meal-card swipe at the canteen, a worker's visit, a
    phone call, a family visit. Counts as activity; shown on the resident card with its source."""

    __tablename__ = "signs_of_life"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column()
    source: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column()
    recorded_by: Mapped[str] = mapped_column(String(200))


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ServiceSecret(Base):
    """Secrets of the service itself (``api/secret_key.py``): the SMS-link signing key generated on first
    start, and fingerprints (never the keys) of keys given in settings, one per process."""

    __tablename__ = "service_secrets"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column()


class WatchStatus(Base):
    """Heartbeats of the watch itself: one row per component and process (scheduler tick, consumer)."""

    __tablename__ = "watch_status"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    updated_at: Mapped[datetime] = mapped_column()
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ManualClockRow(Base):
    """The instant of the ``manual`` clock, shared by every process on the database."""

    __tablename__ = "manual_clock"
    id: Mapped[int] = mapped_column(primary_key=True)
    now: Mapped[datetime] = mapped_column()


class ScreenChange(Base):
    """A change the live screens must show: a resident's row, their devices' online state, an alarm's
    transition. Written by database triggers (migration 0010) whatever process or statement made the
    change; each screen model reads what follows its cursor (PostgreSQL also wakes it by NOTIFY on
    ``shouwang_screen``). Pruned to the newest rows by the hourly job."""

    __tablename__ = "screen_changes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resident_id: Mapped[int | None] = mapped_column(Integer)
    alarm_id: Mapped[int | None] = mapped_column(Integer)
