"""Shelly Gen2+ (Plus, Pro, Gen3/Gen4 devices): parses and renders their MQTT messages. Pure.

From the Shelly Gen2 API documentation:

* MQTT (https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/Mqtt): every topic starts with
  the device's ``topic_prefix`` (default: its id, e.g. ``shellyplusi4-a8032ab12345``). With ``rpc_ntf``
  (on by default) RPC notifications are published on ``<prefix>/events/rpc``; with ``status_ntf`` the
  whole status of a component is published on ``<prefix>/status/<component:id>`` when it changes; the
  device publishes ``true`` on ``<prefix>/online`` when it connects and ``false`` is its last will.
  ``<prefix>/rpc`` carries RPC requests to the device, ``<prefix>/command...`` commands.
* Notifications (https://shelly-api-docs.shelly.cloud/gen2/General/Notifications) are JSON-RPC 2.0 frames
  (https://shelly-api-docs.shelly.cloud/gen2/General/RPCProtocol) ``{"src": "<id>", "dst": "<id>/events",
  "method": ..., "params": {...}}``: ``NotifyStatus`` carries ``ts`` (Unix time, UTC) and only the changed
  attributes of each changed component, e.g. ``{"ts": 1631266595.43, "input:0": {"id": 0, "state": true}}``;
  ``NotifyEvent`` carries ``{"ts": ..., "events": [{"component": "input:0", "id": 0, "event":
  "single_push", "ts": ...}]}``; ``NotifyFullStatus`` is the whole status (sent on connect / wake-up).
* Input (https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/Input): an input in switch mode
  reports ``state`` true/false; in button mode its state is null and it emits the events
  ``single_push``, ``double_push``, ``triple_push``, ``long_push`` (and the raw edges ``btn_down``,
  ``btn_up``). Battery devices report ``devicepower:0`` ``{"battery": {"V": 3.6, "percent": 87}}``.

Device id: the topic prefix (with the route's fixed base removed, e.g. route ``shelly/#`` and prefix
``shelly/hall`` give ``hall``; route ``+/events/rpc`` gives the device's own id). An input other than
``input:0`` is ``<id>/input:<n>``.

Semantics (SPEC section 2): ``online`` is availability (health). A ``NotifyStatus`` reports a change, so an
input's ``state`` there is an observation of the route's ``device_kind`` (true = motion; door: the route
must say which state is closed, as a reed contact can be wired either way); ``status/input:<n>`` is also
re-published on connect, so there a state counts only as a change. ``*_push`` events are button presses
(``btn_down``/``btn_up`` accompany them and are not counted again). ``ts`` is the device time.
``NotifyFullStatus``, other components (sys, wifi, switch, temperature...) and other events are health.
RPC responses and requests are skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

import orjson

from sensors.formats._common import DeviceKind, OnOff, availability, binary_reading, load_object, percent, valid_device
from sensors.payloads import BadTimestamp, Ignored, ParseResult, Reading, Rejection, parse_timestamp

PRESSES = frozenset({"single_push", "double_push", "triple_push", "long_push"})


def parse(topic: str, payload: bytes, zone: tzinfo, *, base: str = "", device_kind: DeviceKind = "motion",
          closed_when: OnOff | None = None) -> ParseResult:
    if base and not topic.startswith(base + "/"):
        return Rejection("unknown_topic", f"not a Shelly topic under {base!r}: {topic!r}")
    levels = (topic[len(base) + 1:] if base else topic).split("/")
    options = (device_kind, closed_when)
    if len(levels) >= 3 and levels[-2:] == ["events", "rpc"]:
        device = "/".join(levels[:-2])
        return _checked(device, topic) or _notification(device, payload, options)
    if len(levels) >= 2 and levels[-1] == "online":
        device = "/".join(levels[:-1])
        return _checked(device, topic) or availability(device, payload, online="true", offline="false", what="online")
    if len(levels) >= 3 and levels[-2] == "status":
        device = "/".join(levels[:-2])
        return _checked(device, topic) or _component_status(device, levels[-1], payload, options)
    if levels[-1] == "rpc" or "command" in levels:
        return Ignored("device_command")
    return Rejection("unknown_topic", f"unknown Shelly Gen2 topic {topic!r}")


def _checked(device: str, topic: str) -> Rejection | None:
    if not device or not valid_device(device):
        return Rejection("unknown_topic", f"no Shelly device prefix in {topic!r}")
    return None


def _time(value: Any, device: str) -> datetime | Rejection | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Rejection("bad_timestamp", f"ts must be Unix seconds, got {str(value)[:40]!r}", device)
    try:
        return parse_timestamp(value, UTC)
    except BadTimestamp as exc:
        return Rejection("bad_timestamp", f"ts: {exc}", device)


def _notification(device: str, payload: bytes, options: tuple[DeviceKind, OnOff | None]) -> ParseResult:
    frame = load_object(payload, device)
    if isinstance(frame, Rejection):
        return frame
    method = frame.get("method")
    if method is None and ("result" in frame or "error" in frame):
        return Ignored("rpc_response")
    params = frame.get("params")
    if method not in ("NotifyStatus", "NotifyEvent", "NotifyFullStatus") or not isinstance(params, dict):
        return Rejection("invalid_field", f"expected a NotifyStatus/NotifyEvent/NotifyFullStatus frame with "
                         f"params, got method {str(method)[:40]!r}", device)
    device_time = _time(params.get("ts"), device)
    if isinstance(device_time, Rejection):
        return device_time
    battery = _battery(params, device)
    if isinstance(battery, Rejection):
        return battery
    if method == "NotifyEvent":
        return _events(device, params, device_time, battery)
    if method == "NotifyStatus":
        for component, status in sorted(params.items()):
            if component.startswith("input:") and isinstance(status, dict) and isinstance(status.get("state"), bool):
                return _input_state(device, component, status["state"], options, device_time, battery,
                                    change_only=False)
    # NotifyFullStatus is the state at connect / wake-up, not a change; other components are health
    return _health(device, device_time, battery, str(method))


def _events(device: str, params: dict[str, Any], device_time: datetime | None, battery: int | None) -> ParseResult:
    events = params.get("events")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        return Rejection("invalid_field", "NotifyEvent needs params.events, a list of objects", device)
    for event in events:
        name, component = event.get("event"), event.get("component")
        if name in PRESSES and isinstance(component, str):
            when = _time(event.get("ts"), device)
            if isinstance(when, Rejection):
                return when
            return Reading(device=_component_device(device, component), kind="button",
                           device_time=when or device_time, battery=battery, value=str(name))
    names = ",".join(str(e.get("event"))[:30] for e in events)
    return _health(device, device_time, battery, f"events: {names}"[:100])


def _component_status(device: str, component: str, payload: bytes,
                      options: tuple[DeviceKind, OnOff | None]) -> ParseResult:
    status = load_object(payload, device)
    if isinstance(status, Rejection):
        return status
    if component.startswith("input:"):
        state = status.get("state")
        if isinstance(state, bool):
            # re-published on every connect: counts only as a change
            return _input_state(device, component, state, options, None, None, change_only=True)
        if state is not None:
            return Rejection("invalid_field", f"{component} state must be true, false or null, got {state!r}", device)
    if component.startswith("devicepower:"):
        battery = _battery({component: status}, device)
        if isinstance(battery, Rejection):
            return battery
        return _health(device, None, battery, component)
    return _health(device, None, None, component)


def _input_state(device: str, component: str, state: bool, options: tuple[DeviceKind, OnOff | None],
                 device_time: datetime | None, battery: int | None, *, change_only: bool) -> ParseResult:
    kind, closed_when = options
    return binary_reading(_component_device(device, component), kind, state, closed_when=closed_when,
                          change_only=change_only, device_time=device_time, battery=battery)


def _component_device(device: str, component: str) -> str:
    return device if component in ("input:0", "button:0") else f"{device}/{component}"


def _battery(params: dict[str, Any], device: str) -> int | Rejection | None:
    for key, status in params.items():
        if key.startswith("devicepower:") and isinstance(status, dict) and isinstance(status.get("battery"), dict):
            level = status["battery"].get("percent")
            if level is not None:
                return percent(level, f"{key}.battery.percent", device)
    return None


def _health(device: str, device_time: datetime | None, battery: int | None, what: str) -> ParseResult:
    kind: Literal["battery", "heartbeat"] = "battery" if battery is not None else "heartbeat"
    return Reading(device=device, kind=kind, device_time=device_time, battery=battery, value=what[:100])


def _frame(device: str, method: str, params: dict[str, Any]) -> bytes:
    return orjson.dumps({"src": device, "dst": f"{device}/events", "method": method, "params": params})


def render_input(device: str, state: bool, *, ts: datetime, index: int = 0, base: str = "") -> tuple[str, bytes]:
    """``<prefix>/events/rpc`` NotifyStatus of an input in switch mode changing to ``state``."""
    params = {"ts": round(ts.timestamp(), 2), f"input:{index}": {"id": index, "state": state}}
    return f"{_prefix(device, base)}/events/rpc", _frame(device, "NotifyStatus", params)


def render_press(device: str, event: str = "single_push", *, ts: datetime, index: int = 0,
                 base: str = "") -> tuple[str, bytes]:
    """``<prefix>/events/rpc`` NotifyEvent of an input in button mode."""
    stamp = round(ts.timestamp(), 2)
    params = {"ts": stamp, "events": [{"component": f"input:{index}", "id": index, "event": event, "ts": stamp}]}
    return f"{_prefix(device, base)}/events/rpc", _frame(device, "NotifyEvent", params)


def render_battery(device: str, level: int, *, ts: datetime, base: str = "") -> tuple[str, bytes]:
    """A NotifyStatus with a battery device's ``devicepower:0``."""
    params = {"ts": round(ts.timestamp(), 2), "devicepower:0": {"id": 0, "battery": {"V": 3.6, "percent": level}}}
    return f"{_prefix(device, base)}/events/rpc", _frame(device, "NotifyStatus", params)


def render_status(device: str, component: str, status: dict[str, Any], *, base: str = "") -> tuple[str, bytes]:
    """``<prefix>/status/<component:id>`` (status_ntf)."""
    return f"{_prefix(device, base)}/status/{component}", orjson.dumps(status)


def render_online(device: str, online: bool, *, base: str = "") -> tuple[str, bytes]:
    return f"{_prefix(device, base)}/online", b"true" if online else b"false"


def _prefix(device: str, base: str) -> str:
    return f"{base}/{device}" if base else device
