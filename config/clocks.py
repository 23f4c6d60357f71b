"""Clocks that need nothing but arithmetic: the system clock and the shared fast clock.

Everything that decides takes ``now`` as a parameter; clocks are where ``now`` comes from. The
``manual`` clock, stored in the database, is :class:`alerts.clock.ManualClock`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from config.settings import utcnow


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()

    def real_seconds(self, span: timedelta) -> float:
        """How many real seconds pass while ``span`` passes on this clock (the same)."""
        return span.total_seconds()


class FastClock:
    """Simulated time ``start + (real - start) * speed``: every process given the same start and speed
    reads the same time, which is how the demo, the simulator and the service agree."""

    def __init__(self, start: datetime, speed: float, real: Callable[[], datetime] = utcnow) -> None:
        self.start = start.astimezone(UTC)
        self.speed = speed
        self._real = real

    def now(self) -> datetime:
        elapsed = (self._real() - self.start).total_seconds()
        return self.start + timedelta(seconds=elapsed * self.speed)

    def real_seconds(self, simulated: timedelta) -> float:
        """How many real seconds pass while ``simulated`` passes on this clock."""
        return simulated.total_seconds() / self.speed
