"""Mass silence raised in bulk: many residents whose deadlines pass at one instant get exactly one
inactivity alarm each, with its history, audit entry, reason and started chain, also when two
processes (two engines, two connection pools) tick at the same instant on one database."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerts import service
from alerts.db import make_engine
from alerts.models import Alarm, AlarmKind, AlarmTransition, AuditEntry, Device, Resident
from alerts.registry.community import load_community
from alerts.rules import Limits
from tests.conftest import T0

H = timedelta(hours=1)
RESIDENTS = 1200  # more than one claim batch


def district(n: int) -> dict:
    return {"community": {"name": "district"}, "grids": [{"name": "G", "micro_grids": [{"name": "M"}]}],
            "residents": [{"ref": f"r{i}", "name": f"resident {i}", "micro_grid": "G/M",
                           "devices": [{"id": f"pir-{i}", "kind": "motion"}]} for i in range(n)]}


def load(engine: Engine, limits: Limits) -> None:
    with Session(engine) as session, session.begin():
        load_community(session, district(RESIDENTS), T0, limits)


def test_a_mass_silence_raises_one_alarm_per_resident_with_its_history_and_chain(
        engine: Engine, watch_policy: service.WatchPolicy) -> None:
    load(engine, watch_policy.limits)
    with Session(engine) as session, session.begin():  # one home's sensor is offline: its alarm says so
        device = session.scalars(select(Device).where(Device.external_id == "pir-7")).one()
        device.online = False
        heard = session.scalars(select(Device).where(Device.external_id == "pir-6")).one()
        heard.offline_due_at = T0 + 20 * H  # its sensor still reports (only the resident is silent)
        away = session.scalars(select(Resident).where(Resident.external_ref == "r8")).one()
        away.away_until_activity = True
    result = service.tick(engine, T0 + 15 * H, watch_policy)
    assert len(result.raised) == RESIDENTS - 1
    with Session(engine) as session:
        alarms = session.scalars(select(Alarm).where(Alarm.kind == AlarmKind.INACTIVITY)).all()
        assert len({a.resident_id for a in alarms}) == len(alarms) == RESIDENTS - 1
        assert all(a.next_action_at == T0 + 15 * H for a in alarms)  # the chain starts now
        by_ref = {a.resident.external_ref: a for a in alarms}
        assert "r8" not in by_ref
        assert by_ref["r7"].devices_offline and by_ref["r7"].reason_params["devices_offline"] is True
        assert not by_ref["r6"].devices_offline and by_ref["r6"].reason_code == "inactivity"
        assert by_ref["r6"].reason_params["hours"] == 15.0 and by_ref["r6"].reason  # worded in notify.language
        opened = session.scalar(select(func.count()).select_from(AlarmTransition)
                                .where(AlarmTransition.action == "opened"))
        audited = session.scalar(select(func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.action == "alarm.opened"))
        assert opened == audited == RESIDENTS - 1
        assert session.scalar(select(func.count()).select_from(Resident).where(Resident.due_at.isnot(None))) == 0
    assert service.tick(engine, T0 + 16 * H, watch_policy).raised == []


def test_two_processes_raising_a_mass_silence_at_once_open_each_alarm_once(
        db_url: str, watch_policy: service.WatchPolicy) -> None:
    engines = [make_engine(db_url), make_engine(db_url)]
    try:
        load(engines[0], watch_policy.limits)
        raised: list[list[int]] = [[], []]
        start = threading.Barrier(2)

        def run(i: int) -> None:
            start.wait()
            raised[i] = service.tick(engines[i], T0 + 15 * H, watch_policy).raised

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not set(raised[0]) & set(raised[1])
        assert len(raised[0]) + len(raised[1]) == RESIDENTS
        with Session(engines[0]) as session:
            per_resident = session.execute(select(Alarm.resident_id, func.count()).group_by(Alarm.resident_id)).all()
        assert len(per_resident) == RESIDENTS and {count for _, count in per_resident} == {1}
    finally:
        for engine in engines:
            engine.dispose()
