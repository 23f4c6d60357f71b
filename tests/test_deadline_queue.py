"""The deadline queue (migration 0015): every writer of ``residents.due_at`` leaves the narrow table
``deadlines`` in step with it (database triggers), the tick claims due residents from it, two claimers
never take the same resident, and an upgrade fills the queue from the residents already there."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session

from alerts import inactivity, signs_of_life, transitions
from alerts.db import is_postgres, make_engine, upgrade
from alerts.limits import refresh_grid
from alerts.models import Alarm, Deadline, Grid, Outcome, Resident, table_of
from alerts.registry import admin
from tests.conftest import PG_URL
from tests.harness import T0, Store

H = timedelta(hours=1)
WINDOW = 14 * H

COMMUNITY = {
    "community": {"name": "测试社区"},
    "grids": [{"name": "G1", "micro_grids": [{"name": "B1"}]}],
    "residents": [{"ref": f"r{i}", "name": f"居民{i}", "micro_grid": "G1/B1",
                   "devices": [{"id": f"pir-{i}", "kind": "motion"}]} for i in range(1, 5)],
}


def queue(engine: Engine) -> dict[int, datetime]:
    with Session(engine) as session:
        return {rid: due for rid, due in session.execute(select(Deadline.resident_id, Deadline.due_at)).tuples()}


def due_columns(engine: Engine) -> dict[int, datetime]:
    with Session(engine) as session:
        return {rid: due for rid, due in session.execute(select(Resident.id, Resident.due_at)).tuples()
                if due is not None}


def assert_queue_holds(engine: Engine) -> None:
    """Every resident with a deadline is queued at it or before it; nobody else is queued."""
    queued, due = queue(engine), due_columns(engine)
    assert set(queued) == set(due)
    assert all(queued[rid] <= due[rid] for rid in due)


def claimable(engine: Engine, store: Store, at: datetime) -> set[int]:
    """Who the tick's claim takes at ``at`` (rolled back)."""
    with Session(engine) as session, session.begin():
        found = {due.id for due in inactivity.claim_due(session, at, store.policy.limits, 100)}
        session.rollback()
    return found


def test_every_writer_of_a_deadline_keeps_the_resident_queued_at_or_before_it(engine: Engine, store: Store) -> None:
    store.load(COMMUNITY)  # INSERT of residents
    ids = store.resident_ids()
    assert queue(engine) == due_columns(engine) == {rid: T0 + WINDOW for rid in ids.values()}

    store.activity(T0 + 2 * H, "pir-1")  # ingest's batch UPDATE ... FROM: a deadline moved later
    now = T0 + 3 * H
    with Session(engine) as session, session.begin():
        r2, r3, r4 = (session.get_one(Resident, ids[ref]) for ref in ("r2", "r3", "r4"))
        admin.set_away(session, r2, now + 24 * H, False, now, store.policy.limits)  # the registry (ORM)
        admin.set_away(session, r3, None, True, now, store.policy.limits)  # no deadline at all
        signs_of_life.record(session, r4, at=now, source=signs_of_life.Source.WORKER_VISIT, note=None, now=now,
                             by="worker", default=store.policy.limits)
    # a deadline moved later leaves its queue row alone (ingest never writes the queue); a cleared one goes
    assert queue(engine) == {ids["r1"]: T0 + WINDOW, ids["r2"]: T0 + WINDOW, ids["r4"]: T0 + WINDOW}
    assert_queue_holds(engine)

    # the tick claims them at the queued instant, the rule finds none due, they are queued at their deadline
    assert store.tick(T0 + WINDOW).raised == []
    assert queue(engine) == due_columns(engine) == {
        ids["r1"]: T0 + 2 * H + WINDOW, ids["r2"]: now + 24 * H + WINDOW, ids["r4"]: now + WINDOW}

    later = T0 + WINDOW
    with Session(engine) as session, session.begin():  # a grid's window shortened: deadlines come forward
        grid = session.scalars(select(Grid)).one()
        grid.inactivity_window_s = 2 * 3600
        refresh_grid(session, grid.id, store.policy.limits, later)
    assert queue(engine) == due_columns(engine) == {
        ids["r1"]: T0 + 4 * H, ids["r2"]: now + 26 * H, ids["r4"]: now + 2 * H}
    raised = store.tick(later + timedelta(minutes=1)).raised
    assert {a.resident_id for a in store.alarms()} == {ids["r1"], ids["r4"]} and len(raised) == 2
    assert queue(engine) == due_columns(engine) == {ids["r2"]: now + 26 * H}


def test_the_tick_empties_the_queue_of_those_it_raises_and_a_resolution_fills_it_again(
        engine: Engine, store: Store) -> None:
    store.load(COMMUNITY)
    ids = store.resident_ids()
    raised = store.tick(T0 + 15 * H).raised  # the tick's set-based UPDATE of the deadlines
    assert len(raised) == 4 and queue(engine) == {}
    assert_queue_holds(engine)
    effects = transitions.Effects(limits=store.policy.limits)
    now = T0 + 16 * H
    with Session(engine) as session, session.begin():
        found = {a.resident_id: a for a in session.scalars(select(Alarm).where(Alarm.id.in_(raised)))}
        transitions.resolved_by_person(session, found[ids["r1"]], now, by="w", channel="api",
                                       outcome=Outcome.RESIDENT_FINE, note=None, effects=effects)
        transitions.resolved_by_person(session, found[ids["r2"]], now, by="w", channel="api",
                                       outcome=Outcome.TAKEN_TO_HOSPITAL, note=None, effects=effects)
    assert queue(engine) == {ids["r1"]: now + WINDOW}  # the window restarts; in hospital: no deadline
    assert_queue_holds(engine)
    assert store.tick(now + WINDOW).raised and queue(engine) == {}


def test_a_resident_deleted_leaves_the_queue(engine: Engine, store: Store) -> None:
    store.load(COMMUNITY)
    ids = store.resident_ids()
    with Session(engine) as session, session.begin():
        admin.delete_resident(session, ids["r1"])
    assert ids["r1"] not in queue(engine) and len(queue(engine)) == 3


def test_two_claimers_never_take_the_same_resident(db_url: str, store: Store) -> None:
    store.load(COMMUNITY)
    engines = [make_engine(db_url), make_engine(db_url)]
    try:
        first = Session(engines[0])
        first.begin()
        taken = {due.id for due in inactivity.claim_due(first, T0 + 15 * H, store.policy.limits, 2)}
        assert len(taken) == 2
        second: list[set[int]] = []

        def claim_second() -> None:  # PostgreSQL skips the rows held; SQLite waits for the one writer
            with Session(engines[1]) as session, session.begin():
                second.append({d.id for d in inactivity.claim_due(session, T0 + 15 * H, store.policy.limits, 10)})

        thread = threading.Thread(target=claim_second)
        thread.start()
        if is_postgres(engines[0]):
            thread.join(timeout=30)
            assert second == [set(store.resident_ids().values()) - taken]
        # the first claimer decides: its residents' deadlines are written, then it commits
        first.execute(update(Resident).where(Resident.id.in_(taken)).values(due_at=None))
        first.commit()
        first.close()
        thread.join(timeout=30)
        assert len(second) == 1 and not second[0] & taken
    finally:
        for e in engines:
            e.dispose()


def test_a_deadline_moved_while_the_resident_is_claimed_is_kept(db_url: str, store: Store) -> None:
    """Activity recorded while the tick holds the resident waits for the tick's commit, then sets the
    deadline again: the resident is queued at it, and claimed again only then."""
    store.load(COMMUNITY)
    ids = store.resident_ids()
    tick_engine = make_engine(db_url)
    raised: list[int] = []
    try:
        session = Session(tick_engine)
        session.begin()  # the tick's batch, not yet committed
        words = inactivity.Words(store.policy.language, store.policy.zone)
        assert inactivity.raise_due(session, T0 + 15 * H, store.policy.limits, words, 10, raised) == 4
        done = threading.Event()

        def activity() -> None:
            store.activity(T0 + 15 * H, "pir-1")
            done.set()

        thread = threading.Thread(target=activity)
        thread.start()
        assert not done.wait(0.5 if is_postgres(tick_engine) else 0)  # held by the claim
        session.commit()
        session.close()
        thread.join(timeout=30)
        assert done.is_set()
    finally:
        tick_engine.dispose()
    assert len(raised) == 4
    assert queue(store.engine) == {ids["r1"]: T0 + 15 * H + WINDOW}
    assert_queue_holds(store.engine)
    assert claimable(store.engine, store, T0 + 15 * H + WINDOW - timedelta(minutes=1)) == set()
    assert claimable(store.engine, store, T0 + 15 * H + WINDOW) == {ids["r1"]}


def test_an_upgrade_fills_the_queue_from_the_residents_already_there(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = PG_URL
        engine = make_engine(url, pool=False)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url, "0009")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(table_of(Resident)), [{"id": rid, "name": f"r{rid}", "due_at": due, "created_at": T0}
                                                      for rid, due in ((1, T0 + H), (2, None), (3, T0 + 2 * H))])
        upgrade(url)
        assert queue(engine) == {1: T0 + H, 3: T0 + 2 * H}
        assert_queue_holds(engine)
    finally:
        engine.dispose()


def test_the_claim_takes_the_earliest_deadlines_first(engine: Engine, store: Store) -> None:
    store.load(COMMUNITY)
    ids = store.resident_ids()
    with Session(engine) as session, session.begin():
        for n, ref in enumerate(("r4", "r2", "r3", "r1")):
            session.execute(update(Resident).where(Resident.id == ids[ref]).values(due_at=T0 + n * H))
    with Session(engine) as session, session.begin():
        assert [d.id for d in inactivity.claim_due(session, T0 + 2 * H, store.policy.limits, 2)] == \
            [ids["r4"], ids["r2"]]
