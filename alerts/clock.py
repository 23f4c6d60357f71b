"""The clock a process runs on, chosen by settings: ``system``, ``fast`` (see :mod:`config.clocks`)
or ``manual``: the instant stored in the database (table ``manual_clock``), which tests and the
``shouwang clock`` command move, so every process sharing the database reads the same time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.models import ManualClockRow
from config.clocks import Clock, FastClock, SystemClock
from config.settings import ClockSettings

__all__ = ["Clock", "FastClock", "ManualClock", "SystemClock", "make_clock"]


class ManualClock:
    """Reads the instant stored in the database; ``set``/``advance`` move it for every process."""

    def __init__(self, engine: Engine, initial: datetime | None = None) -> None:
        self.engine = engine
        self.initial = (initial or datetime(2026, 1, 1, tzinfo=UTC)).astimezone(UTC)

    def now(self) -> datetime:
        # a lock-free read: it may be called while the same thread holds a write transaction
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            value = connection.execute(select(ManualClockRow.now).where(ManualClockRow.id == 1)).scalar()
        return value if value is not None else self.initial

    def set(self, instant: datetime) -> datetime:
        with Session(self.engine) as session, session.begin():
            row = session.get(ManualClockRow, 1)
            if row is None:
                session.add(ManualClockRow(id=1, now=instant.astimezone(UTC)))
            else:
                row.now = instant.astimezone(UTC)
        return instant

    def advance(self, delta: timedelta) -> datetime:
        return self.set(self.now() + delta)


def make_clock(settings: ClockSettings, engine: Engine) -> Clock:
    if settings.mode == "fast":
        assert settings.start is not None  # checked by the settings
        return FastClock(settings.start, settings.speed)
    if settings.mode == "manual":
        return ManualClock(engine, settings.start)
    return SystemClock()
