"""The tick's correlated-silence pass on the database (alerts.infrastructure.step): it reads the whole
district only when a silence could be found there (issue 16: at 100,000 homes that read took ~1.3 s of
every pass, also when every home had just reported)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine, event, update
from sqlalchemy.orm import Session

from alerts import infrastructure
from alerts.incidents import IncidentLimits
from alerts.models import Device, Gateway, MicroGrid, Resident
from tests.conftest import T0

M = timedelta(minutes=1)
NOW = T0 + 180 * M
LIMITS = IncidentLimits()  # 3 homes, a 10-minute window, a 2-hour lookback


def _pass(engine: Engine) -> tuple[bool, infrastructure.IncidentResult]:
    """(whether the step read every device of the district, what it did)"""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with Session(engine) as session, session.begin():
            result = infrastructure.step(session, NOW, LIMITS, timedelta(hours=14))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    district = any("FROM devices JOIN residents" in s for s in statements)
    with Session(engine) as session:
        assert infrastructure._nothing_to_judge(session, NOW, LIMITS) is not district
    return not district, result


def test_a_district_that_just_reported_is_not_read_and_a_silence_or_a_dark_gateway_is(
        engine: Engine, make_micro_grid: Callable[..., MicroGrid], make_resident: Callable[..., Resident],
        make_device: Callable[..., Device]) -> None:
    micro_grid = make_micro_grid()
    devices = [make_device(make_resident(micro_grid), last_seen_at=NOW - M) for _ in range(5)]
    make_device(None, last_seen_at=NOW - 30 * M)  # not adopted: no home's silence
    assert _pass(engine) == (True, infrastructure.IncidentResult())

    def heard(device: Device, at: object) -> None:
        with Session(engine) as session, session.begin():
            session.execute(update(Device).where(Device.id == device.id).values(last_seen_at=at))

    # two homes quiet for 30 minutes: fewer than min_homes could be overdue, still nothing to read
    heard(devices[0], NOW - 30 * M)
    heard(devices[1], NOW - 30 * M)
    assert _pass(engine)[0] is True
    # one quiet since before the lookback is a dead device's business, not an outage's
    heard(devices[2], NOW - 3 * 60 * M)
    assert _pass(engine)[0] is True
    # a third home in the span: the pass reads the district and judges it
    heard(devices[2], NOW - 25 * M)
    assert _pass(engine)[0] is False
    # a gateway reporting itself offline is an incident at once, whatever the homes say
    for device in devices:
        heard(device, NOW - M)
    with Session(engine) as session, session.begin():
        session.add(Gateway(external_id="z2m/7", availability="offline", availability_at=NOW - M, created_at=T0))
    quiet, result = _pass(engine)
    assert quiet is False
    assert len(result.opened) == 1
