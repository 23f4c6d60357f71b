"""A mass change reaches a live screen as one compact delta: thousands of residents changed in one commit
(every device of a district going dark, a district's deadlines passing at once) come as a delta whose
markers are columns (``marker_columns``: only the fields that changed), not a delta or a reload per
resident; a screen that applies the deltas holds the same picture as one that connects afresh. Over real
HTTP (SSE), SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx2 as httpx
import orjson
from sqlalchemy import text

from alerts.models import AlarmKind
from alerts.screen_model import expand_marker_columns
from tests.harness import Site
from tests.helpers import wait_for

H = timedelta(hours=1)
RESIDENTS = 2000


def community() -> dict[str, Any]:
    residents = [{"ref": f"r{i}", "name": f"住户{i}", "micro_grid": "G/M", "latitude": 31.2 + (i % 50) * 1e-4,
                  "longitude": 121.4 + (i // 50) * 1e-4, "devices": [{"id": f"pir-{i}", "kind": "motion"}]}
                 for i in range(RESIDENTS)]
    return {"community": {"name": "district"}, "grids": [{"name": "G", "micro_grids": [{"name": "M"}]}],
            "residents": residents}


class Screen(threading.Thread):
    """A map screen's stream (``transitions=0``), applying what it receives as the map page does."""

    def __init__(self, site: Site) -> None:
        super().__init__(daemon=True)
        self.site = site
        self.markers: dict[int, dict[str, Any]] = {}
        self.kpis: dict[str, Any] = {}
        self.alarms: dict[int, dict[str, Any]] = {}
        self.deltas: list[dict[str, Any]] = []
        self.sizes: list[int] = []
        self.states = 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self.read()
        except httpx.HTTPError:
            if not self.stop.is_set():  # the server closing at the end is expected; anything before is not
                raise

    def read(self) -> None:
        with httpx.stream("GET", self.site.url + "/api/stream?transitions=0", headers=self.site.headers("operator"),
                          timeout=60) as response:
            kind, data = "", ""
            for line in response.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].lstrip()
                elif not line and kind:
                    self.apply(kind, data)
                    kind, data = "", ""

    def apply(self, kind: str, data: str) -> None:
        if kind == "state":
            picture = orjson.loads(data)
            self.markers = {m["id"]: m for m in picture["markers"]}
            if "marker_columns" in picture:  # a district's picture: every field as columns
                self.markers = {m["id"]: m for m in expand(picture["marker_columns"], {})}
            self.alarms = {a["id"]: a for a in picture["alarms"]}
            self.kpis = picture["kpis"]
            self.states += 1
        elif kind == "delta":
            delta = orjson.loads(data)
            self.deltas.append(delta)
            self.sizes.append(len(data))
            for m in delta.get("markers", []):
                self.markers[m["id"]] = m
            if "marker_columns" in delta:
                for m in expand(delta["marker_columns"], self.markers):
                    self.markers[m["id"]] = m
            for rid in delta.get("removed", []):
                self.markers.pop(rid, None)
            for a in delta.get("alarms", []):
                self.alarms[a["id"]] = a
            for aid in delta.get("closed", []):
                self.alarms.pop(aid, None)
            self.kpis = delta.get("kpis", self.kpis)


def expand(columns: dict[str, Any], known: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The screen's reading of ``marker_columns`` (what api/static/screen.js does)."""
    markers = expand_marker_columns(columns, known)
    assert len(markers) == columns["n"]
    return markers


def fresh(site: Site) -> Screen:
    screen = Screen(site)
    screen.start()
    wait_for(lambda: screen.states == 1, timeout=60, message="a fresh screen's whole picture")
    screen.stop.set()
    return screen


def test_a_mass_change_reaches_a_screen_as_one_compact_delta(make_site: Callable[..., Site]) -> None:
    site = make_site(community=community()).serve()
    screen = Screen(site)
    screen.start()
    try:
        wait_for(lambda: screen.states == 1, timeout=60, message="the whole picture")
        assert len(screen.markers) == RESIDENTS and {m["colour"] for m in screen.markers.values()} == {"green"}

        with site.engine.begin() as conn:  # every device of the district dark, in one statement
            conn.execute(text("UPDATE devices SET online = false"))
        wait_for(lambda: screen.kpis.get("devices_offline") == RESIDENTS, timeout=60, message="the dark district")
        with_markers = [d for d in screen.deltas if "markers" in d or "marker_columns" in d]
        assert len(with_markers) == 1  # one delta for the one commit, not one per resident
        columns = with_markers[0]["marker_columns"]
        assert columns["n"] == RESIDENTS
        assert set(columns) - {"n", "id"} <= {"colour", "status"}  # what changed; names and places stay
        assert screen.sizes[screen.deltas.index(with_markers[0])] < 10 * RESIDENTS
        assert {m["colour"] for m in screen.markers.values()} == {"grey"}

        site.rules_at(14 * H)  # every deadline passes at one instant
        raised = len(site.alarms(AlarmKind.INACTIVITY))
        assert raised == RESIDENTS
        wait_for(lambda: screen.kpis.get("open_alarms") == raised, timeout=60, message="the alarms on the screen")
        assert {m["colour"] for m in screen.markers.values()} == {"amber"}

        again = fresh(site)
        assert screen.markers == again.markers
        assert screen.alarms == again.alarms and screen.kpis == again.kpis
    finally:
        screen.stop.set()
