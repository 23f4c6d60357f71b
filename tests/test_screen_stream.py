"""The live screen stream sends the whole picture on connect, then small deltas per change; a reconnect
with Last-Event-ID gets the deltas it missed, or the whole picture when the model no longer holds them.
Over real HTTP (SSE) on SQLite and PostgreSQL; the changes come through the database's change log."""

from __future__ import annotations

import threading
from typing import Any

import orjson

from tests.harness import Site
from tests.test_roles_and_stream import GRID_B, api, raise_alarms, read_events

__all__ = ["api"]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("event", "") for e in events if e.get("event") in ("state", "delta")]


def deltas_until(api: Site, who: str, marker_of: int, colour: str, last_event_id: str | None = None,
                 ) -> tuple[list[dict[str, Any]], threading.Event, list[dict[str, Any]]]:
    """Start reading the stream in a thread until a delta shows ``marker_of`` in ``colour``."""
    got: list[dict[str, Any]] = []
    connected = threading.Event()

    def done(events: list[dict[str, Any]]) -> bool:
        if any(e.get("event") in ("state", "delta") for e in events):
            connected.set()
        for e in events:
            if e.get("event") == "delta":
                data = orjson.loads(e["data"])
                if any(m["id"] == marker_of and m["colour"] == colour for m in data.get("markers", [])):
                    return True
        return False

    thread = threading.Thread(target=lambda: got.extend(read_events(api, who, done, last_event_id)))
    thread.start()
    return got, connected, [{"thread": thread}]


def acknowledged_while_watched(api: Site, alarms: dict[str, int], ref: str) -> list[dict[str, Any]]:
    """The operator's stream, read while the alarm of ``ref`` is acknowledged, until a delta shows it blue."""
    got, connected, [handle] = deltas_until(api, "operator", api.resident_ids()[ref], "blue")
    assert connected.wait(20)
    api.http("operator", "POST", f"/api/alarms/{alarms[ref]}/acknowledge")
    handle["thread"].join(timeout=30)
    return got


def test_connect_gets_the_whole_picture_and_a_change_only_a_small_delta(api: Site) -> None:
    alarms = raise_alarms(api)
    got = acknowledged_while_watched(api, alarms, "a1")
    assert kinds(got)[0] == "state" and kinds(got).count("state") == 1
    state = orjson.loads(next(e for e in got if e.get("event") == "state")["data"])
    assert {m["id"] for m in state["markers"]} == set(api.resident_ids().values())
    assert {a["id"] for a in state["alarms"]} == set(alarms.values())
    delta_events = [e for e in got if e.get("event") == "delta"]
    delta = orjson.loads(delta_events[-1]["data"])
    assert [m["id"] for m in delta["markers"]] == [api.resident_ids()["a1"]]  # only what changed
    assert [a["id"] for a in delta.get("alarms", [])] == [alarms["a1"]]
    assert delta["alarms"][0]["state"] == "acknowledged"
    assert len(delta_events[-1]["data"]) < 5000


def test_a_reconnect_within_the_models_memory_gets_only_the_missed_deltas(api: Site) -> None:
    alarms = raise_alarms(api)
    got = acknowledged_while_watched(api, alarms, "a1")
    last_id = [e for e in got if e.get("event") in ("state", "delta")][-1]["id"]
    api.http("operator", "POST", f"/api/alarms/{alarms['b1']}/acknowledge")  # while disconnected
    again, _, [handle] = deltas_until(api, "operator", api.resident_ids()["b1"], "blue", last_event_id=last_id)
    handle["thread"].join(timeout=30)
    assert kinds(again) and "state" not in kinds(again)
    missed = [orjson.loads(e["data"]) for e in again if e.get("event") == "delta"]
    b1 = api.resident_ids()["b1"]
    assert any(m["id"] == b1 and m["colour"] == "blue" for d in missed for m in d.get("markers", []))


def test_a_reconnect_with_a_gap_gets_the_whole_picture(api: Site) -> None:
    raise_alarms(api)
    first = read_events(api, "operator", lambda ev: any(e.get("event") == "state" for e in ev))
    transition, version, epoch = next(e for e in first if e.get("event") == "state")["id"].split(".")
    for stale in (f"{transition}.{version}.other-epoch", f"{transition}.{int(version) + 1000}.{epoch}"):
        again = read_events(api, "operator", lambda ev: bool(kinds(ev)), last_event_id=stale)
        assert kinds(again)[0] == "state"
        assert len(orjson.loads(next(e for e in again if e.get("event") == "state")["data"])["markers"]) == 3


def test_a_grid_workers_deltas_show_only_their_grid(api: Site) -> None:
    alarms = raise_alarms(api)
    got, connected, [handle] = deltas_until(api, GRID_B, api.resident_ids()["b1"], "blue")
    assert connected.wait(20)
    api.http("operator", "POST", f"/api/alarms/{alarms['a1']}/acknowledge")  # not theirs
    api.http("operator", "POST", f"/api/alarms/{alarms['b1']}/acknowledge")
    handle["thread"].join(timeout=30)
    state = orjson.loads(next(e for e in got if e.get("event") == "state")["data"])
    assert {m["id"] for m in state["markers"]} == {api.resident_ids()["b1"]}
    for e in got:
        if e.get("event") == "delta":
            data = orjson.loads(e["data"])
            assert {m["id"] for m in data.get("markers", [])} <= {api.resident_ids()["b1"]}
            assert {a["id"] for a in data.get("alarms", [])} <= {alarms["b1"]}
