"""Administration through the API on SQLite and PostgreSQL: the organisation, residents, devices,
contacts and workers; roles; the CSV import in each datum; away mode; adopting a quarantined device;
export and deletion of a resident's data; the audit log. The manual clock is moved by the test."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import models
from alerts.models import Alarm, Attempt, AuditEntry, Contact, Device, Event, Grid, MicroGrid, Resident, Worker
from alerts.registry import geo
from tests.harness import T0, Site, obs
from tests.helpers import ROOT

H = timedelta(hours=1)
WINDOW = timedelta(hours=14)
GRID_PHONE, MICRO_PHONE = "+8613800000001", "+8613800000002"

# One house in the three datums (Glatzel/pyxis python/tests/test_crypto.py; see tests/test_geo.py).
HOUSE_WGS84 = (30.6107779, 121.0917077)
HOUSE_IN = {"wgs84": HOUSE_WGS84, "gcj02": (30.608604331756705, 121.09626935575027),
            "bd09": (30.61484572185035, 121.10271732371203)}

COMMUNITY = {
    "community": {"name": "夷陵社区"},
    "grids": [{"name": "第一网格", "micro_grids": [{"name": "1号楼"}, {"name": "2号楼"}]}],
    "workers": [
        {"name": "李娜", "phone": GRID_PHONE, "role": "grid_worker", "grid": "第一网格"},
        {"name": "赵强", "phone": MICRO_PHONE, "role": "micro_grid_worker", "micro_grid": "第一网格/1号楼"},
    ],
    "residents": [
        {"ref": "r1", "name": "王秀英", "address": "1号楼 2单元 301", "phone": "+867178000001",
         "micro_grid": "第一网格/1号楼", "devices": [{"id": "pir-1", "kind": "motion"}],
         "contacts": [{"name": "王强", "phone": "+8613900000011"}]},
    ],
}


@pytest.fixture
def env(make_site: Callable[..., Site]) -> Site:
    site = make_site(community=COMMUNITY)
    site.set_pin(GRID_PHONE, "2468")
    return site


def motion(env: Site, at: timedelta, device: str) -> None:
    """A motion from ``device`` as the native format hands it to ingest, payload and all."""
    env.record(at, obs(device, topic=f"shouwang/v1/events/{device}", payload=b'{"type": "motion"}'))


def audit(env: Site, **filters: Any) -> list[dict[str, Any]]:
    response = env.client("admin").get("/api/audit", params=filters)
    assert response.status_code == 200, response.text
    return response.json()["entries"]  # type: ignore[no-any-return]


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def within_a_metre(lat: float, lon: float, expected: tuple[float, float]) -> bool:
    return geo.distance_m(lat, lon, *expected) < 1.0


def test_an_admin_builds_and_edits_the_organisation_through_the_api(env: Site) -> None:
    api = env.client("admin")
    grid = ok(api.post("/api/admin/grids", json={"name": "第二网格", "window_hours": 12}), 201)
    assert grid["window_hours"] == 12
    micro = ok(api.post("/api/admin/micro-grids", json={"grid_id": grid["id"], "name": "5号楼"}), 201)
    assert ok(api.post("/api/admin/micro-grids", json={"grid_id": grid["id"], "name": "5号楼"}), 409)
    resident = ok(api.post("/api/admin/residents", json={
        "ref": "r9", "name": "李桂兰", "birth_year": 1938, "address": "5号楼 101", "phone": "+867178000009",
        "micro_grid_id": micro["id"], "consent_at": "2026-11-01", "latitude": HOUSE_IN["gcj02"][0],
        "longitude": HOUSE_IN["gcj02"][1], "datum": "gcj02"}), 201)
    assert within_a_metre(resident["latitude"], resident["longitude"], HOUSE_WGS84)
    assert resident["consent_at"] == "2026-11-01"
    assert datetime.fromisoformat(resident["due_at"]) == T0 + 12 * H  # the grid's window
    assert "coordinate=gaode" in resident["amap_link"] and resident["geo_link"].startswith("geo:30.61")
    device = ok(api.post("/api/admin/devices", json={"external_id": "pir-9", "kind": "motion",
                                                     "resident_id": resident["id"]}), 201)
    contact = ok(api.post("/api/admin/contacts", json={"resident_id": resident["id"], "name": "李明",
                                                       "phone": "+86 139 0000 0099"}), 201)
    assert contact["phone"] == "+8613900000099" and contact["priority"] == 1
    worker = ok(api.post("/api/admin/workers", json={"name": "周敏", "phone": "+8613800000009",
                                                     "role": "micro_grid_worker", "micro_grid_id": micro["id"],
                                                     "pin": "1357"}), 201)
    assert worker["grid_id"] == grid["id"] and worker["has_pin"]
    login = env.client("admin").post("/api/auth/worker-login", json={"phone": "+8613800000009", "pin": "1357"})
    assert login.status_code == 200, login.text

    # edits
    moved = ok(api.patch(f"/api/admin/residents/{resident['id']}", json={"window_hours": 6, "phone": None}))
    assert moved["phone"] is None and moved["window_hours"] == 6
    assert datetime.fromisoformat(moved["due_at"]) == T0 + 6 * H  # a shorter window moves the deadline
    assert ok(api.patch(f"/api/admin/devices/{device['id']}", json={"kind": "door", "name": "front door"}))[
        "kind"] == "door"
    assert ok(api.patch(f"/api/admin/contacts/{contact['id']}", json={"relation": "son", "priority": 2}))[
        "relation"] == "son"
    assert ok(api.patch(f"/api/admin/workers/{worker['id']}", json={"active": False}))["active"] is False
    assert ok(api.patch(f"/api/admin/grids/{grid['id']}", json={"name": "第贰网格"}))["name"] == "第贰网格"
    assert ok(api.patch(f"/api/admin/micro-grids/{micro['id']}", json={"name": "6号楼"}))["name"] == "6号楼"
    assert ok(api.post("/api/admin/residents", json={"ref": "r9", "name": "重复"}), 409)
    assert ok(api.post("/api/admin/workers", json={"name": "x", "phone": GRID_PHONE, "role": "supervisor"}), 409)
    assert ok(api.post("/api/admin/workers", json={"name": "x", "phone": "+861", "role": "grid_worker"}), 422)
    assert ok(api.patch("/api/admin/residents/9999", json={"name": "x"}), 404)

    # reads
    assert [r["ref"] for r in ok(api.get("/api/admin/residents"))] == ["r1", "r9"]
    assert [d["external_id"] for d in ok(api.get("/api/admin/devices", params={"resident_id": resident["id"]}))] \
        == ["pir-9"]
    assert [c["name"] for c in ok(api.get("/api/admin/contacts", params={"resident_id": resident["id"]}))] \
        == ["李明"]
    assert {w["phone"] for w in ok(api.get("/api/admin/workers"))} >= {GRID_PHONE, "+8613800000009"}
    assert len(ok(api.get("/api/admin/micro-grids", params={"grid_id": grid["id"]}))) == 1

    # deletes: a micro-grid with residents and a grid with micro-grids stay
    assert ok(api.delete(f"/api/admin/micro-grids/{micro['id']}"), 409)
    assert ok(api.delete(f"/api/admin/grids/{grid['id']}"), 409)
    ok(api.patch(f"/api/admin/residents/{resident['id']}", json={"micro_grid_id": None}))
    for path in (f"contacts/{contact['id']}", f"devices/{device['id']}", f"workers/{worker['id']}",
                 f"micro-grids/{micro['id']}", f"grids/{grid['id']}"):
        ok(api.delete(f"/api/admin/{path}"), 204)
    assert env.count(Contact, Contact.id == contact["id"]) == 0
    assert env.count(Device, Device.id == device["id"]) == 0
    assert env.count(Worker, Worker.id == worker["id"]) == 0
    assert env.count(Grid, Grid.id == grid["id"]) == 0 and env.count(MicroGrid, MicroGrid.id == micro["id"]) == 0

    # a second community: grids must then say which one they belong to
    other = ok(api.post("/api/admin/communities", json={"name": "西陵社区", "latitude": HOUSE_IN["bd09"][0],
                                                        "longitude": HOUSE_IN["bd09"][1], "datum": "bd09"}), 201)
    assert within_a_metre(other["latitude"], other["longitude"], HOUSE_WGS84)
    assert ok(api.post("/api/admin/grids", json={"name": "西一"}), 422)
    assert ok(api.post("/api/admin/grids", json={"name": "西一", "community_id": other["id"]}), 201)[
        "community_id"] == other["id"]
    moved = ok(api.patch(f"/api/admin/residents/{resident['id']}", json={
        "latitude": HOUSE_IN["bd09"][0], "longitude": HOUSE_IN["bd09"][1], "datum": "bd09"}))
    assert within_a_metre(moved["latitude"], moved["longitude"], HOUSE_WGS84)
    assert ok(api.get(f"/api/admin/residents/{resident['id']}"))["ref"] == "r9"

    actions = [e["action"] for e in audit(env, actor="admin-user (admin)")]
    for action in ("grid.create", "micro_grid.create", "resident.create", "device.create", "contact.create",
                   "worker.create", "resident.update", "worker.update", "grid.delete", "worker.delete",
                   "community.create", "resident.view"):
        assert action in actions
    assert all("李桂兰" not in str(e["detail"]) for e in audit(env, target=f"resident:{resident['id']}"))


def test_only_admins_change_things_and_only_the_centre_reads(env: Site) -> None:
    resident_id = env.resident("r1").id
    operator, screen, worker = env.client("operator"), env.client("screen"), env.client(GRID_PHONE)
    worker_body = {"name": "x", "phone": "+8613800000077", "role": "supervisor"}
    assert operator.post("/api/admin/workers", json=worker_body).status_code == 403
    assert operator.post("/api/admin/grids", json={"name": "G"}).status_code == 403
    assert operator.delete(f"/api/admin/residents/{resident_id}").status_code == 403
    assert operator.get(f"/api/admin/residents/{resident_id}/export").status_code == 403
    assert operator.get("/api/admin/workers").status_code == 200
    assert operator.get("/api/audit").status_code == 200
    assert operator.post(f"/api/residents/{resident_id}/away", json={"until_activity": True}).status_code == 200
    assert operator.delete(f"/api/residents/{resident_id}/away").status_code == 200
    for client in (screen, worker):
        assert client.get("/api/admin/residents").status_code == 403
        assert client.get("/api/audit").status_code == 403
        assert client.post("/api/admin/workers", json=worker_body).status_code == 403
        assert client.post(f"/api/residents/{resident_id}/away", json={"until_activity": True}).status_code == 403
        assert client.post("/api/admin/import/residents", content=b"ref,name\nx,y\n",
                           headers={"content-type": "text/csv"}).status_code == 403
    with TestClient(env.runtime.app) as anonymous:
        assert anonymous.get("/api/admin/residents").status_code == 401
    assert env.count(Worker, Worker.phone == "+8613800000077") == 0


def _csv(datum: str, ref_prefix: str = "c") -> str:
    lat, lon = HOUSE_IN[datum]
    return (
        "ref,name,birth_year,address,latitude,longitude,phone,grid,micro_grid,consent,window_hours,device_ids,"
        "contact_name,contact_phone,contact2_name,contact2_phone\n"
        f"{ref_prefix}1,张兰英,1940,3号楼 1单元 202,{lat},{lon},+867178000021,第三网格,3号楼,2026-10-08,,"
        f"{ref_prefix}-pir-1;{ref_prefix}-door-1:door,张伟,+8613900000021,张芳,+8613900000022\n"
        f"{ref_prefix}2,\"刘玉珍, 大姐\",1936,3号楼 2单元 101,,,,第三网格,3号楼,2026-10-09,12,{ref_prefix}-pir-2,"
        ",,,\n"
    )


@pytest.mark.parametrize("datum", ["wgs84", "gcj02", "bd09"])
def test_the_csv_import_converts_each_datum_to_wgs84(env: Site, datum: str) -> None:
    body = _csv(datum).encode()
    first = ok(env.client("admin").post("/api/admin/import/residents", params={"datum": datum},
                                        content=b"\xef\xbb\xbf" + body, headers={"content-type": "text/csv"}))
    assert (first["lines"], first["created"], first["updated"]) == (2, 2, 0)
    assert first["counts"]["devices"] == 3 and first["counts"]["contacts"] == 2
    resident = env.resident("c1")
    assert resident.latitude is not None and resident.longitude is not None
    assert within_a_metre(resident.latitude, resident.longitude, HOUSE_WGS84)
    assert resident.consent_at is not None and resident.consent_at.isoformat() == "2026-10-08"
    assert env.resident("c2").name == "刘玉珍, 大姐" and env.resident("c2").due_at == T0 + 12 * H
    with Session(env.engine) as session:
        kinds = dict(session.execute(select(Device.external_id, Device.kind)
                                     .where(Device.resident_id == resident.id)).tuples().all())
    assert kinds == {"c-pir-1": "motion", "c-door-1": "door"}

    # again, as a multipart upload: the same file changes nothing
    again = ok(env.client("admin").post("/api/admin/import/residents", params={"datum": datum},
                            files={"file": ("residents.csv", body, "text/csv")}))
    assert (again["created"], again["updated"]) == (0, 2) and sum(again["counts"].values()) == 0
    assert env.count(Resident) == 3 and env.count(Contact) == 3 and env.count(Device) == 4
    assert env.count(Grid) == 2 and env.count(MicroGrid) == 3
    assert [e["detail"]["datum"] for e in audit(env, action="resident.import")] == [datum, datum]


def test_a_broken_csv_is_refused_with_line_numbers_and_nothing_is_imported(env: Site) -> None:
    broken = (
        "ref,name,latitude,longitude,grid,micro_grid,consent,device_ids,contact_name,contact_phone\n"
        "b1,好行,30.69,111.28,第三网格,3号楼,2026-10-08,b-pir-1,张伟,+8613900000031\n"
        "b2,,30.69,111.28,,,,,,\n"
        "b3,坏纬度,300,111.28,,,,,,\n"
        "b4,坏日期,,,,,2026-13-40,,,\n"
        "b5,坏设备,,,,,,b-x:toaster,,\n"
        "b1,重复,,,,,,,,\n"
        "b6,只有网格,,,第三网格,,,,,\n"
        "b7,别人的设备,,,,,,pir-1,,\n"
    )
    response = env.client("admin").post("/api/admin/import/residents", content=broken.encode(),
                            headers={"content-type": "text/csv"})
    assert response.status_code == 422, response.text
    errors = {e["line"]: e["reason"] for e in response.json()["detail"]["errors"]}
    assert sorted(errors) == [3, 4, 5, 6, 7, 8]
    assert "name" in errors[3] and "latitude" in errors[4] and "consent" in errors[5]
    assert "toaster" in errors[6] and "第2行" in errors[7] and "micro_grid" in errors[8]  # worded in zh
    assert response.json()["detail"]["message"] == "未导入任何数据" and errors[3] == "name（姓名）为空"
    assert env.count(Resident) == 1 and env.count(Grid) == 1 and env.count(Device) == 1

    # line 9: the file is fine line by line, but a device belongs to someone else
    clash = "ref,name,device_ids\nb1,好行,b-pir-1\nb7,别人的设备,pir-1\n"
    response = env.client("admin").post("/api/admin/import/residents", content=clash.encode(),
                            headers={"content-type": "text/csv"})
    assert response.status_code == 422
    assert [e["line"] for e in response.json()["detail"]["errors"]] == [3]
    assert env.count(Resident) == 1 and env.count(Device) == 1

    bad_header = env.client("admin").post("/api/admin/import/residents", content=b"ref,nom\nx,y\n",
                              headers={"content-type": "text/csv"})
    assert bad_header.status_code == 422 and bad_header.json()["detail"]["errors"][0]["line"] == 1
    not_utf8 = env.client("admin").post("/api/admin/import/residents", content="ref,name\nx,王\n".encode("gbk"),
                            headers={"content-type": "text/csv"})
    assert not_utf8.status_code == 422 and "UTF-8" in not_utf8.json()["detail"]["errors"][0]["reason"]


def test_the_shipped_example_csv_imports(env: Site) -> None:
    data = (ROOT / "config" / "residents.example.csv").read_bytes()
    result = ok(env.client("admin").post("/api/admin/import/residents", params={"datum": "gcj02"}, content=data,
                             headers={"content-type": "text/csv"}))
    assert result["created"] >= 2 and env.count(Resident) == 1 + result["created"]


def test_away_mode_holds_the_alarm_and_its_end_restarts_the_window(env: Site) -> None:
    resident_id = env.resident("r1").id
    operator = env.client("operator")
    assert env.resident("r1").due_at == T0 + WINDOW

    # away with an end date: no alarm at the old deadline, the window restarts at the end date
    until = T0 + 48 * H
    away = ok(operator.post(f"/api/residents/{resident_id}/away", json={"until": until.isoformat()}))
    assert away["away"] is True and datetime.fromisoformat(away["due_at"]) == until + WINDOW
    env.rules_at(20 * H)
    assert env.count(Alarm, Alarm.resident_id == resident_id) == 0
    assert env.resident("r1").due_at == until + WINDOW

    # until next activity: no deadline at all, and activity ends away mode
    away = ok(operator.post(f"/api/residents/{resident_id}/away", json={"until_activity": True}))
    assert away["due_at"] is None and env.resident("r1").away_until is None
    env.rules_at(100 * H)
    assert env.count(Alarm, Alarm.resident_id == resident_id) == 0
    motion(env, 101 * H, "pir-1")
    assert env.resident("r1").away_until_activity is False and env.resident("r1").due_at == T0 + 101 * H + WINDOW

    # back by hand: the window runs from now
    ok(operator.post(f"/api/residents/{resident_id}/away", json={"until": (T0 + 200 * H).isoformat()}))
    env.clock.set(T0 + 110 * H)
    back = ok(operator.delete(f"/api/residents/{resident_id}/away"))
    assert back["away"] is False and datetime.fromisoformat(back["due_at"]) == T0 + 110 * H + WINDOW
    env.rules_at(110 * H + WINDOW)
    assert env.count(Alarm, Alarm.resident_id == resident_id) == 1

    assert ok(operator.post(f"/api/residents/{resident_id}/away", json={}), 422)
    assert ok(operator.post(f"/api/residents/{resident_id}/away", json={"until": T0.isoformat()}), 422)
    assert {e["action"] for e in audit(env, actor="operator-user (operator)")} == {"resident.away", "resident.back"}


def test_an_adopted_device_has_its_next_message_accepted(env: Site) -> None:
    resident_id = env.resident("r1").id
    motion(env, H, "new-pir")
    assert env.count(Event) == 0
    with Session(env.engine) as session:
        held = session.scalars(select(models.QuarantinedMessage)).one()
    assert held.reason == "unknown_device" and held.device_external_id == "new-pir"
    motion(env, 2 * H, "new-pir")

    assert ok(env.client("operator").post(f"/api/quarantine/{held.id}/adopt",
                                           json={"resident_id": resident_id}), 403)
    adopted = ok(env.client("admin").post(f"/api/quarantine/{held.id}/adopt",
                                          json={"resident_id": resident_id, "kind": "motion"}))
    assert adopted["device"]["external_id"] == "new-pir" and adopted["adopted_messages"] == 2
    assert env.count(models.QuarantinedMessage, models.QuarantinedMessage.adopted_at.is_(None)) == 0

    motion(env, 3 * H, "new-pir")
    assert env.count(Event, Event.resident_id == resident_id) == 1
    assert env.resident("r1").last_activity_at == T0 + 3 * H and env.resident("r1").due_at == T0 + 3 * H + WINDOW
    assert ok(env.client("admin").post(f"/api/quarantine/{held.id}/adopt", json={"resident_id": 9999}), 404)
    assert audit(env, action="device.adopt")[0]["detail"]["external_id"] == "new-pir"


def _raise_an_alarm_with_calls(env: Site) -> int:
    motion(env, H, "pir-1")
    env.rules_at(H + WINDOW)
    env.runtime.escalate(env.clock.now())
    with Session(env.engine) as session:
        alarm = session.scalars(select(Alarm)).one()
    return alarm.id


def test_the_export_holds_everything_about_the_resident(env: Site) -> None:
    resident_id = env.resident("r1").id
    alarm_id = _raise_an_alarm_with_calls(env)
    assert env.count(Attempt, Attempt.alarm_id == alarm_id) >= 1
    ok(env.client("operator").get(f"/api/residents/{resident_id}"))  # a view of the card, audited

    data = ok(env.client("admin").get(f"/api/admin/residents/{resident_id}/export"))
    assert data["resident"]["name"] == "王秀英" and data["resident"]["micro_grid"] == "1号楼"
    assert data["resident"]["grid"] == "第一网格" and data["resident"]["external_ref"] == "r1"
    assert [d["external_id"] for d in data["devices"]] == ["pir-1"]
    assert [c["phone"] for c in data["contacts"]] == ["+8613900000011"]
    [alarm] = data["alarms"]
    assert alarm["code"] == f"A{alarm_id}" and alarm["kind"] == "inactivity"
    assert alarm["transitions"] and alarm["attempts"]
    assert alarm["attempts"][0]["phone"] == "+867178000001"  # the check call to the resident
    assert [e["kind"] for e in data["events"]] == ["motion"]
    assert "resident.view" in {a["action"] for a in data["audit"]}
    assert audit(env, action="resident.export")[0]["target"] == f"resident:{resident_id}"


def test_deleting_a_resident_removes_the_personal_data_and_keeps_that_it_happened(env: Site) -> None:
    resident_id = env.resident("r1").id
    alarm_id = _raise_an_alarm_with_calls(env)
    ok(env.client("admin").patch(f"/api/admin/residents/{resident_id}", json={"address": "1号楼 2单元 302"}))

    deleted = ok(env.client("admin").delete(f"/api/admin/residents/{resident_id}"))
    assert deleted == {"deleted": resident_id, "devices_unlinked": 1, "contacts": 1, "events": 1, "alarms": 1}
    assert env.count(Resident) == 0 and env.count(Contact) == 0
    assert env.count(Event) == 0 and env.count(Alarm) == 0
    assert env.count(Attempt, Attempt.alarm_id == alarm_id) == 0
    assert env.count(models.AlarmTransition, models.AlarmTransition.alarm_id == alarm_id) == 0
    assert env.count(Device, Device.resident_id.is_(None)) == 1  # the hardware stays, unlinked
    with Session(env.engine) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.target == f"resident:{resident_id}")).all()
        everything = " ".join(f"{e.action} {e.detail}" for e in session.scalars(select(AuditEntry)))
    assert [e.action for e in entries][-1] == "resident.delete"
    assert all(e.detail.get("redacted") for e in entries if e.action != "resident.delete")
    assert "王秀英" not in everything and "+867178000001" not in everything and "302" not in everything
    assert ok(env.client("admin").get(f"/api/admin/residents/{resident_id}/export"), 404)
    assert ok(env.client("admin").delete(f"/api/admin/residents/{resident_id}"), 404)


def test_the_audit_log_lists_changes_newest_first_a_page_at_a_time(env: Site) -> None:
    for name in ("A", "B", "C", "D", "E"):
        ok(env.client("admin").post("/api/admin/grids", json={"name": name}), 201)
    first = ok(env.client("admin").get("/api/audit", params={"action": "grid.create", "limit": 2}))
    assert [e["detail"]["name"] for e in first["entries"]] == ["E", "D"]
    assert all(e["actor"] == "admin-user (admin)" for e in first["entries"])
    second = ok(env.client("admin").get("/api/audit", params={"action": "grid.create", "limit": 2,
                                                  "before": first["next_before"]}))
    assert [e["detail"]["name"] for e in second["entries"]] == ["C", "B"]
    last = ok(env.client("admin").get("/api/audit", params={"action": "grid.create", "limit": 2,
                                                "before": second["next_before"]}))
    assert [e["detail"]["name"] for e in last["entries"]] == ["A"] and last["next_before"] is None
    assert len(audit(env, action="grid.")) == 5
    assert audit(env, target="grid:999") == []
