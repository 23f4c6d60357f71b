"""A virtual device speaking one of the formats: its external id, its messages, and the routes the
service needs to read them. Pure: rendering goes through the same ``sensors.formats`` modules the
service parses with.

Each home has a motion sensor (``motion``) and optionally a door contact (``door``) and a panic button
(``button``). What a device says is one of a few abstract happenings (:data:`Happening`), rendered the
way its format says it:

=========  ========================================================================================
motion     someone moved (a native ``motion`` event; the ON / true / occupied state elsewhere)
still      the PIR's hold time ran out (OFF / false / ``occupancy: false``; nothing in native)
open       the door opened; ``closed`` it closed
press      the panic button was pressed; ``release`` released (state formats only)
health     a periodic report: heartbeat, telemetry, signal or battery, whatever the format sends
battery    a battery report
online     the device (re)connected; ``offline`` it said goodbye (last will, availability)
=========  ========================================================================================

Each vendor format lives under its own topic tree below a common ``prefix`` (empty in production, a
test's own base in tests). Formats whose route says what a sensor is (``device_kind``) get one subtree
per kind, e.g. ``tasmota/door/stat/<topic>/RESULT``; see :func:`routes`.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, Literal

from sensors.formats import esphome, homeassistant, homie, native, shelly_gen1, shelly_gen2, tasmota, zigbee2mqtt

Format = Literal["native", "zigbee2mqtt", "tasmota", "shelly_gen1", "shelly_gen2", "esphome", "homeassistant",
                 "homie"]
FORMATS: tuple[Format, ...] = ("native", "zigbee2mqtt", "tasmota", "shelly_gen1", "shelly_gen2", "esphome",
                               "homeassistant", "homie")
Role = Literal["motion", "door", "button"]
ROLES: tuple[Role, ...] = ("motion", "door", "button")
Happening = Literal["motion", "still", "open", "closed", "press", "release", "health", "battery", "online",
                    "offline"]
# formats whose messages can carry a battery level
BATTERY_FORMATS = frozenset({"native", "zigbee2mqtt", "shelly_gen1", "shelly_gen2", "homie"})
# formats whose activity messages carry the device's own time (else the service uses the receive time)
DEVICE_TIME_FORMATS = frozenset({"native", "zigbee2mqtt", "shelly_gen2"})
# a PIR stays ON this long after the last movement it saw (Zigbee2MQTT's occupancy_timeout is 90 s)
HOLD_SECONDS = 90

_NATIVE = "shouwang/v1/events"
_HOMIE_PROPERTY = {"motion": ("sensor", "motion"), "door": ("door", "closed"), "button": ("button", "pressed")}
_ESPHOME_SENSOR = {"motion": "pir", "door": "door", "button": "button"}


class UnsupportedMessage(ValueError):
    """The format has no way to say this (e.g. a battery level in Tasmota)."""


def pulses(fmt: str, role: Role) -> bool:
    """Whether the format reports this sensor as events rather than on/off states (no ``still``)."""
    return fmt == "native" and role == "motion"


def reports_state(fmt: str, role: Role) -> bool:
    """Whether the service reads this sensor as a state that counts only when it changes, so the device
    says its resting state when it starts (else the first movement or opening after it would not count)."""
    if role == "motion":
        return not pulses(fmt, role)
    if role == "door":
        return fmt in ("zigbee2mqtt", "shelly_gen1", "esphome", "homeassistant", "homie")
    return fmt in ("esphome", "homeassistant", "homie")


def external_id(fmt: str, role: Role, name: str, prefix: str = "") -> str:
    """The device id the service derives from this device's topics (each format's docstring says how)."""
    if fmt == "esphome":
        return f"{prefix}esphome/{role}/{name}"  # node_is_device: the node's whole topic prefix
    return name


def render(fmt: str, role: Role, name: str, happening: Happening, *, at: datetime, zone: tzinfo,
           battery: int | None = None, prefix: str = "", event_id: str | None = None) -> tuple[str, bytes] | None:
    """Topic and payload of ``happening`` on the device, or None when the format sends nothing for it.
    ``at`` is when it happened (the device time, for formats that send one)."""
    if happening == "battery" and fmt not in BATTERY_FORMATS:
        raise UnsupportedMessage(f"the {fmt} format reports no battery level")
    renderer = _RENDERERS[fmt]
    return renderer(role, name, happening, at, zone, battery, prefix, event_id)


def garbage_topic(fmt: str, role: Role, name: str, *, at: datetime, zone: tzinfo, prefix: str = "") -> str:
    """Where a malformed message of this device goes: the topic of its activity messages."""
    rendered = render(fmt, role, name, "motion" if role == "motion" else "press" if role == "button" else "open",
                      at=at, zone=zone, prefix=prefix)
    assert rendered is not None
    return rendered[0]


def routes(formats: set[str] | list[str], prefix: str = "") -> list[dict[str, Any]]:
    """The ``mqtt.routes`` entries (topic filter, format, options) that read what these formats publish."""
    found: list[dict[str, Any]] = []
    for fmt in FORMATS:
        if fmt not in formats:
            continue
        if fmt == "native":
            found.append({"topic": f"{prefix}{_NATIVE}/#", "format": "native"})
        elif fmt == "zigbee2mqtt":
            found.append({"topic": f"{prefix}zigbee2mqtt/#", "format": "zigbee2mqtt"})
        elif fmt == "shelly_gen1":
            found.append({"topic": f"{prefix}shellies/#", "format": "shelly_gen1"})
        else:
            for role in ROLES:
                found.extend(_kind_routes(fmt, role, prefix))
    return found


def _kind_routes(fmt: str, role: Role, prefix: str) -> list[dict[str, Any]]:
    common: dict[str, Any] = {"format": fmt, "device_kind": role}
    if fmt == "tasmota":
        options = {"closed_when": "on"} if role == "door" else {"sensor": "Button1"} if role == "button" else {}
        return [{"topic": f"{prefix}tasmota/{role}/#", **common, **options}]
    if fmt == "shelly_gen2":
        return [{"topic": f"{prefix}shelly/{role}/#", **common, **({"closed_when": "on"} if role == "door" else {})}]
    if fmt == "esphome":
        return [{"topic": f"{prefix}esphome/{role}/#", **common, "node_is_device": True}]
    if fmt == "homeassistant":
        return [{"topic": f"{prefix}ha/{role}/+/state", **common},
                {"topic": f"{prefix}ha/{role}/+/availability", **common}]
    node, prop = _HOMIE_PROPERTY[role]
    return [{"topic": f"{prefix}homie/{role}/#", **common, "node_is_device": True, "sensor": f"{node}/{prop}",
             **({"closed_when": "on"} if role == "door" else {})}]


# -- one renderer per format ---------------------------------------------------------------------------
# Each takes (role, name, happening, at, zone, battery, prefix, event_id) and returns (topic, payload) or None.

def _native(role: Role, name: str, what: Happening, at: datetime, _zone: tzinfo, battery: int | None,
            prefix: str, event_id: str | None) -> tuple[str, bytes] | None:
    base = f"{prefix}{_NATIVE}"
    if what in ("still", "release"):
        return None
    if what == "motion":
        return native.render(name, "motion", ts=at, event_id=event_id, base=base)
    if what in ("open", "closed"):
        return native.render(name, "door", ts=at, state=what, event_id=event_id, base=base)
    if what == "press":
        return native.render(name, "button", ts=at, event_id=event_id, base=base)
    if what in ("online", "offline"):
        return native.render(name, "availability", ts=at, state=what, base=base)
    kind = "battery" if what == "battery" else "heartbeat"
    return native.render(name, kind, ts=at, battery=battery, base=base)


def _zigbee2mqtt(role: Role, name: str, what: Happening, at: datetime, _zone: tzinfo, battery: int | None,
                 prefix: str, _event_id: str | None) -> tuple[str, bytes] | None:
    base = f"{prefix}zigbee2mqtt"
    if what in ("online", "offline"):
        return zigbee2mqtt.render_availability(name, what, base=base)
    if what == "release":
        return None
    states: dict[str, dict[str, Any]] = {
        "motion": {"occupancy": True}, "still": {"occupancy": False}, "open": {"contact": False},
        "closed": {"contact": True}, "press": {"action": "single"},
    }
    state = states.get(what, {"linkquality": 87})
    return zigbee2mqtt.render(name, base=base, battery=battery, last_seen=at, **state)


def _tasmota(role: Role, name: str, what: Happening, at: datetime, zone: tzinfo, _battery: int | None,
             prefix: str, _event_id: str | None) -> tuple[str, bytes] | None:
    tree = f"{prefix}tasmota/{role}/"
    # events (SetOption114 / SetOption73) on stat/<topic>/RESULT; a door contact reports ON when closed
    actions = {"motion": "ON", "still": "OFF", "open": "OFF", "closed": "ON"}
    if what in actions:
        return tasmota.render_result(name, actions[what], prefix=tree)
    if what == "press":
        return tasmota.render_result(name, "SINGLE", sensor="Button1", prefix=tree)
    if what == "release":
        return None
    if what in ("online", "offline"):
        return tasmota.render_lwt(name, what == "online", prefix=tree)
    return tasmota.render_state(name, zone, time=at, prefix=tree)


def _shelly_gen1(role: Role, name: str, what: Happening, at: datetime, _zone: tzinfo, battery: int | None,
                 prefix: str, _event_id: str | None) -> tuple[str, bytes] | None:
    base = f"{prefix}shellies"
    if what in ("motion", "still"):
        return shelly_gen1.render_motion_status(name, what == "motion", bat=battery or 90, timestamp=at, base=base)
    if what in ("open", "closed"):
        return shelly_gen1.render_door(name, what == "closed", base=base)
    if what == "press":
        return shelly_gen1.render_input_event(name, "S", base=base)
    if what == "release":
        return None
    if what in ("online", "offline"):
        return shelly_gen1.render_online(name, what == "online", base=base)
    return shelly_gen1.render_sensor(name, "battery", str(battery if battery is not None else 90), base=base)


def _shelly_gen2(role: Role, name: str, what: Happening, at: datetime, _zone: tzinfo, battery: int | None,
                 prefix: str, _event_id: str | None) -> tuple[str, bytes] | None:
    base = f"{prefix}shelly/{role}"
    # an input in switch mode: true = motion / door closed (the route's closed_when = "on")
    states = {"motion": True, "still": False, "open": False, "closed": True}
    if what in states:
        return shelly_gen2.render_input(name, states[what], ts=at, base=base)
    if what == "press":
        return shelly_gen2.render_press(name, ts=at, base=base)
    if what == "release":
        return None
    if what in ("online", "offline"):
        return shelly_gen2.render_online(name, what == "online", base=base)
    return shelly_gen2.render_battery(name, battery if battery is not None else 90, ts=at, base=base)


def _esphome(role: Role, name: str, what: Happening, _at: datetime, _zone: tzinfo, _battery: int | None,
             prefix: str, _event_id: str | None) -> tuple[str, bytes] | None:
    node = external_id("esphome", role, name, prefix)
    # binary_sensor states; a door follows Home Assistant's device class (ON = open)
    states = {"motion": True, "still": False, "open": True, "closed": False, "press": True, "release": False}
    if what in states:
        return esphome.render_binary_sensor(node, _ESPHOME_SENSOR[role], states[what])
    if what in ("online", "offline"):
        return esphome.render_status(node, what == "online")
    return esphome.render_sensor(node, "wifi_signal", -61)


def _homeassistant(role: Role, name: str, what: Happening, _at: datetime, _zone: tzinfo, _battery: int | None,
                   prefix: str, _event_id: str | None) -> tuple[str, bytes] | None:
    tree = f"{prefix}ha/{role}/{name}"
    states = {"motion": True, "still": False, "open": True, "closed": False, "press": True, "release": False}
    if what in states:
        return homeassistant.render_state(f"{tree}/state", states[what])
    # no heartbeat in Home Assistant's state topics: a device re-announcing itself is its sign of health
    return homeassistant.render_availability(f"{tree}/availability", what != "offline")


def _homie(role: Role, name: str, what: Happening, _at: datetime, _zone: tzinfo, battery: int | None,
           prefix: str, _event_id: str | None) -> tuple[str, bytes] | None:
    base = f"{prefix}homie/{role}"
    node, prop = _HOMIE_PROPERTY[role]
    states = {"motion": True, "still": False, "open": False, "closed": True, "press": True, "release": False}
    if what in states:
        return homie.render_property(name, node, prop, states[what], base=base)
    if what in ("online", "offline"):
        return homie.render_state(name, "ready" if what == "online" else "lost", base=base)
    if battery is not None:
        return homie.render_stats(name, "battery", str(battery), base=base)
    return homie.render_stats(name, "uptime", "3600", base=base)


_RENDERERS = {
    "native": _native, "zigbee2mqtt": _zigbee2mqtt, "tasmota": _tasmota, "shelly_gen1": _shelly_gen1,
    "shelly_gen2": _shelly_gen2, "esphome": _esphome, "homeassistant": _homeassistant, "homie": _homie,
}
