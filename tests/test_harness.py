"""The harness's own promises, on SQLite and PostgreSQL: the ``make_*`` rows are what the watch sees (a grid's
window sets the deadline), a site's clients are signed in as the role asked for, and the policies the fixtures
hand out are the ones a process derives from the same settings."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from alerts.models import Alarm, Community, Device, Grid, MicroGrid, Resident, Worker
from alerts.recording import IngestPolicy
from alerts.service import WatchPolicy
from api import accounts, runtime
from config.settings import Settings
from tests.harness import T0, H, Site, obs


def test_a_resident_made_in_a_grid_with_an_8_hour_window_falls_due_8_hours_after_the_watch_starts(
        make_grid: Callable[..., Grid], make_micro_grid: Callable[..., MicroGrid],
        make_resident: Callable[..., Resident]) -> None:
    building = make_micro_grid(make_grid(inactivity_window_s=8 * 3600))
    assert make_resident(building).due_at == T0 + 8 * H
    assert make_resident().due_at == T0 + 14 * H  # no grid: the default window


def test_made_rows_are_watched_like_loaded_ones(
        make_site: Callable[..., Site], make_micro_grid: Callable[..., MicroGrid],
        make_resident: Callable[..., Resident], make_device: Callable[..., Device]) -> None:
    site = make_site()
    resident = make_resident(make_micro_grid())
    device = make_device(resident)
    site.record(H, obs(device.external_id))
    assert site.resident(resident.external_ref or "").due_at == T0 + 15 * H
    site.rules_at(15 * H)
    assert [a.resident_id for a in site.alarms("inactivity")] == [resident.id]


def test_a_site_signs_each_client_in_as_the_role_asked_for(
        make_site: Callable[..., Site], make_community: Callable[..., Community], make_grid: Callable[..., Grid],
        make_micro_grid: Callable[..., MicroGrid], make_resident: Callable[..., Resident],
        make_worker: Callable[..., Worker], make_alarm: Callable[..., Alarm]) -> None:
    site = make_site()
    community = make_community()
    mine, theirs = make_micro_grid(make_grid(community)), make_micro_grid(make_grid(community))
    worker = make_worker(micro_grid=mine, role="micro_grid_worker", pin="1357")
    seen, unseen = make_resident(mine), make_resident(theirs)
    alarm = make_alarm(seen)
    assert {r["id"] for r in site.client("operator").get("/api/residents").json()} == {seen.id, unseen.id}
    assert {r["id"] for r in site.client(worker.phone).get("/api/residents").json()} == {seen.id}
    assert site.client("screen").post(f"/api/alarms/{alarm.id}/acknowledge").status_code == 403
    assert site.client("admin").get("/api/admin/workers").status_code == 200
    assert site.client().get("/api/residents").status_code == 401
    login = site.client().post("/api/auth/worker-login", json={"phone": worker.phone, "pin": "1357"})
    assert login.status_code == 200 and login.json()["role"] == "micro_grid_worker"


def test_the_policy_fixtures_are_what_a_process_derives_from_its_settings(
        default_settings: Settings, watch_policy: WatchPolicy, ingest_policy: IngestPolicy) -> None:
    assert watch_policy == runtime.watch_policy(default_settings)
    assert ingest_policy == runtime.ingest_policy(default_settings)


def test_a_site_can_start_elsewhere_in_another_zone_and_sign_in_an_integration_and_a_user(
        make_site: Callable[..., Site]) -> None:
    start = T0 + 30 * 24 * H
    site = make_site(start=start, timezone="Europe/Berlin", community={
        "community": {"name": "夷陵社区"}, "grids": [{"name": "第一网格", "micro_grids": [{"name": "1号楼"}]}],
        "residents": [{"ref": "r1", "name": "王秀英", "micro_grid": "第一网格/1号楼"}]})
    assert site.clock.now() == start and str(site.settings.tz) == "Europe/Berlin"
    assert site.resident("r1").due_at == start + 14 * H  # loaded at the start, not at T0
    assert site.tick_at(start + 14 * H).raised and site.clock.now() == start + 14 * H
    resident_id = site.resident("r1").id
    canteen = site.client("integration:canteen")
    assert canteen.post(f"/api/residents/{resident_id}/activity", json={"source": "meal_card"}).status_code == 201
    assert canteen.get("/api/alarms").json() == []
    with Session(site.engine) as session, session.begin():
        accounts.add_user(session, "centre-admin", "admin", "a long enough password", start)
    site.sign_in("centre-admin", "a long enough password")
    assert site.client("centre-admin").get("/api/admin/workers").status_code == 200
