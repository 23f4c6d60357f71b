"""A resident's effective limits, in one place: the resident's override, else their grid's, else the
global default (healthchecks' ``Check.going_down_after``: every caller asks here instead of re-joining
the tables). Also the one place that turns those limits into a stored deadline.

The effective limits are derived when read, never stored: the global default is a setting that may
change between restarts, and a grid's window changes for all its residents at once.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Select, func, literal_column, select
from sqlalchemy.orm import Session

from alerts import rules
from alerts.models import Grid, MicroGrid, Resident

Ts = TypeVarTuple("Ts")


def with_grid(query: Select[*Ts]) -> Select[*Ts]:
    """``query`` joined resident -> micro-grid -> grid (outer joins: a resident may have neither)."""
    return (query.outerjoin(MicroGrid, Resident.micro_grid_id == MicroGrid.id)
            .outerjoin(Grid, MicroGrid.grid_id == Grid.id))


def residents_with_limits() -> Select[Resident, int | None, int | None]:
    """Residents with their grid's overrides; give each row to :func:`limits_of`."""
    return with_grid(select(Resident, Grid.inactivity_window_s, Grid.early_warning_s))


def limits_of(default: rules.Limits, resident: Resident, grid_window_s: int | None,
              grid_warning_s: int | None) -> rules.Limits:
    """The limits of one row of :func:`residents_with_limits`."""
    return limits_from(default, resident.inactivity_window_s, resident.early_warning_s, grid_window_s,
                       grid_warning_s)


# the override columns, for a query that selects columns rather than the resident (ingest's device lookup)
LIMIT_COLUMNS = (Resident.inactivity_window_s, Resident.early_warning_s, Grid.inactivity_window_s,
                 Grid.early_warning_s)


@lru_cache(maxsize=4096)  # pure, and few distinct overrides: a mass silence asks for the same few limits
def limits_from(default: rules.Limits, resident_window_s: int | None, resident_warning_s: int | None,
                grid_window_s: int | None, grid_warning_s: int | None) -> rules.Limits:
    """The limits from the values of :data:`LIMIT_COLUMNS`, in that order."""
    return rules.effective_limits(default, grid_window_s, grid_warning_s, resident_window_s, resident_warning_s)


def window_seconds(default_window_s: Any) -> ColumnElement[float]:
    """The inactivity window in seconds as SQL, over :func:`with_grid`'s joins: the rule of
    :func:`alerts.rules.effective_limits` (the resident's override, else the grid's, else the default; an
    override of 0 counts as none); ``default_window_s`` is the default's window in seconds (a value or a
    bound parameter). For a statement that moves many residents' deadlines at once (ingest on
    PostgreSQL) without reading their overrides first."""
    none: ColumnElement[int] = literal_column("0")
    return func.coalesce(func.nullif(Resident.inactivity_window_s, none),
                         func.nullif(Grid.inactivity_window_s, none), default_window_s)


def resident_limits(session: Session, resident: Resident, default: rules.Limits) -> rules.Limits:
    """The limits of one resident (one query for their grid's overrides)."""
    grid_window = grid_warning = None
    if resident.micro_grid_id is not None:
        row = session.execute(select(Grid.inactivity_window_s, Grid.early_warning_s)
                              .join(MicroGrid, MicroGrid.grid_id == Grid.id)
                              .where(MicroGrid.id == resident.micro_grid_id)).first()
        if row is not None:
            grid_window, grid_warning = row
    return limits_of(default, resident, grid_window, grid_warning)


def deadline(resident: Resident, limits: rules.Limits, now: datetime) -> datetime | None:
    """The stored deadline the rules of :func:`alerts.rules.decide_due` give this resident: none while
    away until next activity, ``away_until + window`` while away with an end date, otherwise
    ``max(last activity, watch_from) + window`` (from ``now`` for a resident never watched yet)."""
    if resident.away_until_activity:
        return None
    start = rules.watch_start(resident.last_activity_at, resident.watch_from) or resident.created_at or now
    if resident.away_until is not None:
        start = max(start, resident.away_until)
    return start + limits.window


def refresh_due(session: Session, resident: Resident, default: rules.Limits, now: datetime) -> None:
    """Recompute a resident's stored deadline after their window, their grid, or their grid's window
    changed. A NULL deadline of a resident already watched (an open alarm, away until next activity)
    stays NULL: the tick or the next activity sets it again."""
    plan_detection(resident, now)
    if resident.away_until_activity:
        resident.due_at = None
        return
    if resident.due_at is None and resident.last_activity_at is not None:
        return
    resident.due_at = deadline(resident, resident_limits(session, resident, default), now)


def plan_detection(resident: Resident, now: datetime) -> None:
    """Ask the tick to plan the resident's time-window rule, dwell limits and rhythm look afresh (the tick knows the
    zone; see :mod:`alerts.routine`): after a change of their window, their grid's, or their grid."""
    resident.routine_due_at = now
    resident.dwell_due_at = now  # the dwell limits (alerts.dwell): none leaves it NULL after one look
    resident.early_warning_due_at = now  # the early-warning notice's look (alerts.detection), planned afresh
    if resident.rhythm_due_at is None:
        resident.rhythm_due_at = now


def refresh_grid(session: Session, grid_id: int, default: rules.Limits, now: datetime) -> int:
    """Recompute the deadlines of every resident of a grid whose window or time-window rule changed;
    returns how many."""
    residents = session.scalars(select(Resident).join(MicroGrid, Resident.micro_grid_id == MicroGrid.id)
                                .where(MicroGrid.grid_id == grid_id)).all()
    for resident in residents:
        refresh_due(session, resident, default, now)
    return len(residents)
