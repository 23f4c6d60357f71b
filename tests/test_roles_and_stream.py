"""Roles over the real API (SQLite and PostgreSQL) and the live stream over real HTTP (SSE)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx2 as httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.escalation.links import sign_link
from alerts.models import AlarmTransition, AuditEntry, Worker
from config.settings import utcnow
from tests.harness import Site

H = timedelta(hours=1)
GRID_A, GRID_B, MICRO_A1, MICRO_A2 = "+8613800000001", "+8613800000002", "+8613800000003", "+8613800000004"

COMMUNITY = {
    "community": {"name": "社区"},
    "grids": [{"name": "A", "micro_grids": [{"name": "A1"}, {"name": "A2"}]},
              {"name": "B", "micro_grids": [{"name": "B1"}]}],
    "workers": [
        {"name": "甲", "phone": GRID_A, "role": "grid_worker", "grid": "A"},
        {"name": "乙", "phone": GRID_B, "role": "grid_worker", "grid": "B"},
        {"name": "丙", "phone": MICRO_A1, "role": "micro_grid_worker", "micro_grid": "A/A1"},
        {"name": "丁", "phone": MICRO_A2, "role": "micro_grid_worker", "micro_grid": "A/A2"},
    ],
    "residents": [
        {"ref": "a1", "name": "住A1", "micro_grid": "A/A1", "devices": [{"id": "d-a1", "kind": "motion"}]},
        {"ref": "a2", "name": "住A2", "micro_grid": "A/A2", "devices": [{"id": "d-a2", "kind": "motion"}]},
        {"ref": "b1", "name": "住B1", "micro_grid": "B/B1", "devices": [{"id": "d-b1", "kind": "motion"}]},
    ],
}


def served_community(make_site: Callable[..., Site]) -> Site:
    """Shouwang served over real HTTP; callers sign in as a role or as a worker (by phone)."""
    return make_site(community=COMMUNITY).serve()


@pytest.fixture
def api(make_site: Callable[..., Site]) -> Site:
    return served_community(make_site)


def raise_alarms(api: Site) -> dict[str, int]:
    """Everyone moves at T0 and is silent after: an inactivity alarm each at T0 + 14 h (the chain not run)."""
    api.activity(timedelta(0), "d-a1", "d-a2", "d-b1")
    api.rules_at(14 * H)
    alarms = {ref: api.alarms(resident=ref) for ref in api.resident_ids()}
    assert all(len(one) == 1 for one in alarms.values()), alarms
    return {ref: one[0].id for ref, one in alarms.items()}


def test_every_role_sees_only_its_residents(api: Site) -> None:
    def visible(who: str) -> set[str]:
        names = {r["name"] for r in api.http(who, "GET", "/api/residents").json()}
        return {n[-2:].lower() for n in names}

    assert visible("admin") == visible("operator") == visible("screen") == {"a1", "a2", "b1"}
    assert visible(GRID_A) == {"a1", "a2"}
    assert visible(GRID_B) == {"b1"}
    assert visible(MICRO_A1) == {"a1"}
    assert api.http(GRID_A, "GET", f"/api/residents/{api.resident_ids()['b1']}").status_code == 404
    assert api.http(MICRO_A1, "GET", f"/api/residents/{api.resident_ids()['a2']}").status_code == 404
    assert api.http(MICRO_A1, "GET", f"/api/residents/{api.resident_ids()['a1']}").status_code == 200
    assert httpx.get(api.url + "/api/residents").status_code == 401


def test_every_role_may_act_only_on_its_alarms(api: Site) -> None:
    alarms = raise_alarms(api)
    assert {a["id"] for a in api.http(GRID_A, "GET", "/api/alarms").json()} == {alarms["a1"], alarms["a2"]}
    assert api.http(GRID_A, "POST", f"/api/alarms/{alarms['b1']}/accept").status_code == 404
    assert api.http(MICRO_A1, "POST", f"/api/alarms/{alarms['a2']}/accept").status_code == 404
    assert api.http("screen", "POST", f"/api/alarms/{alarms['a1']}/acknowledge").status_code == 403
    assert api.http("screen", "POST", f"/api/alarms/{alarms['a1']}/resolve",
                    json={"outcome": "resident_fine"}).status_code == 403
    assert api.http(GRID_A, "POST", f"/api/alarms/{alarms['a1']}/dispatch").status_code == 403
    accepted = api.http(MICRO_A1, "POST", f"/api/alarms/{alarms['a1']}/accept")
    assert accepted.status_code == 200 and accepted.json()["state"] == "acknowledged"
    assert api.http(GRID_B, "POST", f"/api/alarms/{alarms['b1']}/arrived").json()["arrived_by"].startswith("乙")
    assert api.http("operator", "POST", f"/api/alarms/{alarms['a2']}/dispatch").status_code == 200
    with Session(api.engine) as session:
        actions = {(e.actor, e.action) for e in session.scalars(select(AuditEntry))}
    assert ("丙 (micro_grid_worker, API)", "alarm.accepted") in actions
    assert ("乙 (grid_worker)", "resident.view") not in actions
    api.http(GRID_B, "GET", f"/api/residents/{api.resident_ids()['b1']}")
    with Session(api.engine) as session:
        views = session.scalars(select(AuditEntry).where(AuditEntry.action == "resident.view")).all()
    assert [(v.actor, v.target) for v in views] == [("乙 (grid_worker)", f"resident:{api.resident_ids()['b1']}")]


def test_worker_sign_in_is_rate_limited(api: Site) -> None:
    api.set_pin(GRID_A, "1357")
    ok = httpx.post(api.url + "/api/auth/worker-login", json={"phone": GRID_A, "pin": "1357"})
    assert ok.status_code == 200 and ok.json()["role"] == "grid_worker"
    for _ in range(5):
        assert httpx.post(api.url + "/api/auth/worker-login", json={"phone": GRID_A, "pin": "0000"}).status_code == 401
    locked = httpx.post(api.url + "/api/auth/worker-login", json={"phone": GRID_A, "pin": "1357"})
    # worded in notify.language (zh by default)
    assert locked.status_code == 401 and locked.json()["detail"] == "登录失败次数过多，请稍后再试"
    assert locked.headers["X-Error-Code"] == "locked_out"


def test_the_sms_link_signs_the_worker_in_and_expires(api: Site) -> None:
    alarms = raise_alarms(api)
    with Session(api.engine) as session:
        worker_id = session.scalars(select(Worker.id).where(Worker.phone == GRID_A)).one()
    real = utcnow()  # a link's life is real time, whatever the service's clock says
    good = sign_link(api.runtime.secret_key, worker_id, alarms["a1"], real + 20 * H)
    response = httpx.get(f"{api.url}/m/a/{alarms['a1']}?t={good}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/m/#alarm-{alarms['a1']}"
    cookie = response.cookies.get("sw_session")
    assert cookie and httpx.get(api.url + "/api/auth/me", cookies={"sw_session": cookie}).json()["name"] == "甲"
    expired = sign_link(api.runtime.secret_key, worker_id, alarms["a1"], real - H)
    assert httpx.get(f"{api.url}/m/a/{alarms['a1']}?t={expired}").status_code == 403
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    assert httpx.get(f"{api.url}/m/a/{alarms['a1']}?t={forged}").status_code == 403


def read_events(api: Site, who: str, stop: Any, last_event_id: str | None = None,
                timeout: float = 20) -> list[dict[str, Any]]:
    """Read the SSE stream until ``stop(events)`` is true."""
    headers = api.headers(who)
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with httpx.stream("GET", api.url + "/api/stream", headers=headers, timeout=timeout) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line:
                if current:
                    events.append(current)
                    current = {}
                    if stop(events):
                        return events
                continue
            field, _, value = line.partition(":")
            current[field] = value.lstrip()
    return events


def test_a_subscriber_sees_an_alarm_open_acknowledged_and_resolved_in_order(api: Site) -> None:
    got: list[dict[str, Any]] = []

    def transitions(events: list[dict[str, Any]]) -> list[str]:
        return [orjson.loads(e["data"])["action"] for e in events if e.get("event") == "transition"]

    connected = threading.Event()

    def done(ev: list[dict[str, Any]]) -> bool:
        connected.set()  # the first event (hello) says the stream is open: what happens now is news
        return transitions(ev).count("resolved") >= 3

    reader = threading.Thread(target=lambda: got.extend(read_events(api, "operator", done)))
    reader.start()
    assert connected.wait(15)
    alarms = raise_alarms(api)
    for ref in ("a1", "a2", "b1"):
        api.http("operator", "POST", f"/api/alarms/{alarms[ref]}/acknowledge")
        api.http("operator", "POST", f"/api/alarms/{alarms[ref]}/resolve", json={"outcome": "resident_fine"})
    reader.join(timeout=30)
    a1 = [orjson.loads(e["data"]) for e in got if e.get("event") == "transition"]
    a1 = [t["action"] for t in a1 if t["alarm"]["id"] == alarms["a1"]]
    assert a1 == ["opened", "acknowledged", "resolved"]
    ids = [int(e["id"]) for e in got if e.get("event") == "transition"]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    states = [orjson.loads(e["data"]) for e in got if e.get("event") == "state"]
    assert states and {m["id"] for m in states[0]["markers"]} == set(api.resident_ids().values())


def test_a_reconnect_with_last_event_id_gets_what_it_missed(api: Site) -> None:
    alarms = raise_alarms(api)
    first = read_events(api, "operator", lambda ev: any(e.get("event") == "state" for e in ev))
    assert not [e for e in first if e.get("event") == "transition"]  # history is not news on a fresh connect
    with Session(api.engine) as session:
        last_seen = max(t.id for t in session.scalars(select(AlarmTransition)))
    api.http("operator", "POST", f"/api/alarms/{alarms['a1']}/acknowledge")  # while disconnected
    api.http("operator", "POST", f"/api/alarms/{alarms['b1']}/acknowledge")
    missed = read_events(api, "operator", lambda ev: sum(e.get("event") == "transition" for e in ev) >= 2,
                         last_event_id=str(last_seen))
    got = [orjson.loads(e["data"]) for e in missed if e.get("event") == "transition"]
    assert [(t["alarm"]["id"], t["action"]) for t in got] == [(alarms["a1"], "acknowledged"),
                                                              (alarms["b1"], "acknowledged")]
    scoped = read_events(api, GRID_B, lambda ev: sum(e.get("event") == "transition" for e in ev) >= 1,
                         last_event_id=str(last_seen))
    assert [orjson.loads(e["data"])["alarm"]["id"] for e in scoped if e.get("event") == "transition"] == [
        alarms["b1"]]
