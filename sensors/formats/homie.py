"""Homie convention v4 (and v3, same topics): parses and renders its MQTT messages. Pure.

From the Homie convention v4.0.0 (https://homieiot.github.io/specification/spec-core-v4_0_0/):

* a device publishes under ``homie/<device id>/`` (``homie`` is the default base topic);
* ``homie/<device>/$state`` is the device lifecycle: ``init`` (connected, not ready yet), ``ready``,
  ``disconnected`` (clean disconnect, sent before disconnecting), ``sleeping`` (sent before sleeping),
  ``lost`` (the last will: badly disconnected) and ``alert`` (connected, but something is wrong and needs
  human intervention);
* other ``$`` topics are attributes of the device, node or property (``$homie``, ``$name``, ``$nodes``,
  ``$properties``, ``$datatype``...); the legacy stats extension publishes ``$stats/battery`` (percent)
  and other ``$stats/...`` every ``$stats/interval``;
* ``homie/<device>/<node>/<property>`` carries the property value (booleans are ``true`` / ``false``);
  values are retained unless the property is ``$retained false`` (a momentary event such as a door bell);
  ``.../<property>/set`` is a command to the device.

Device id: ``<device>`` for the lifecycle and stats, ``<device>/<node>/<property>`` for a property value;
with the route option ``node_is_device`` every message of the device is ``<device>``. The route option
``sensor`` names the activity property as ``<node>/<property>``; without it every boolean property is one.

Semantics (SPEC section 2): ``$state`` is health: ``ready`` and ``sleeping`` are online (a sleeping
device announced it), ``disconnected`` and ``lost`` offline, ``alert`` offline too (the device says it
needs a person; the offline grace still applies), ``init`` a heartbeat. A boolean property value is read
as the route's ``device_kind`` (``true`` = motion / pressed; a door route must say which value means
closed: Homie has no convention). Values are states that are re-published, so ``true`` counts only as a
change from ``false`` unless the route sets ``force_update`` (use it for non-retained event properties).
Retained replays are never observations (ingest skips them). Non-boolean values of other properties
are health; attributes and commands are skipped. Homie sends no device time.
"""

from __future__ import annotations

from datetime import tzinfo

from sensors.formats._common import DeviceKind, OnOff, binary_reading, percent, text, valid_device
from sensors.payloads import Availability, Ignored, ParseResult, Reading, Rejection

LIFECYCLE = {"ready": "online", "sleeping": "online", "disconnected": "offline", "lost": "offline",
             "alert": "offline"}
BOOLEAN = {"true": True, "false": False}


def parse(topic: str, payload: bytes, zone: tzinfo, *, base: str = "homie", sensor: str | None = None,
          device_kind: DeviceKind = "motion", closed_when: OnOff | None = None, force_update: bool = False,
          node_is_device: bool = False) -> ParseResult:
    prefix = base + "/"
    if not topic.startswith(prefix):
        return Rejection("unknown_topic", f"not a Homie topic under {base!r}: {topic!r}")
    levels = topic[len(prefix):].split("/")
    device, rest = levels[0], levels[1:]
    if not rest or not valid_device(device) or device.startswith("$"):
        return Rejection("unknown_topic", f"Homie topics are {base}/<device>/..., got {topic!r}")
    value = text(payload)
    if rest == ["$state"]:
        return _lifecycle(device, value)
    if rest[0] == "$stats" and len(rest) == 2:
        if rest[1] == "battery":
            battery = percent(value, "$stats/battery", device)
            if isinstance(battery, Rejection):
                return battery
            return Reading(device=device, kind="battery", battery=battery, node=True)
        return Reading(device=device, kind="heartbeat", value=f"$stats/{rest[1]}={value[:50]}", node=True)
    if any(level.startswith("$") for level in rest):
        return Ignored("homie_attribute")
    if len(rest) == 3 and rest[2] == "set":
        return Ignored("device_command")
    if len(rest) != 2:
        return Rejection("unknown_topic", f"Homie property topics are {base}/<device>/<node>/<property>, "
                         f"got {topic!r}", device)
    path = "/".join(rest)
    target = device if node_is_device else f"{device}/{path}"
    watched = sensor is None or path == sensor
    if watched and value in BOOLEAN:
        return binary_reading(target, device_kind, BOOLEAN[value], closed_when=closed_when,
                              change_only=not force_update)
    if sensor is not None and watched:
        return Rejection("invalid_field", f"{path} must be true or false, got {value[:40]!r}", target)
    if not node_is_device:
        return Ignored("not_a_watched_property")
    return Reading(device=device, kind="heartbeat", value=f"{path}={value[:60]}")


def _lifecycle(device: str, value: str) -> ParseResult:
    if value == "init":
        return Reading(device=device, kind="heartbeat", value="init", node=True)
    if value not in LIFECYCLE:
        return Rejection("invalid_field", f"$state must be one of init, ready, disconnected, sleeping, lost, "
                         f"alert; got {value[:40]!r}", device)
    availability: Availability = "online" if LIFECYCLE[value] == "online" else "offline"
    return Reading(device=device, kind="availability", availability=availability, value=value, node=True)


def render_state(device: str, state: str, *, base: str = "homie") -> tuple[str, bytes]:
    """``homie/<device>/$state`` (init, ready, disconnected, sleeping, lost, alert)."""
    return f"{base}/{device}/$state", state.encode()


def render_property(device: str, node: str, prop: str, value: bool | str, *, base: str = "homie") -> tuple[str, bytes]:
    """``homie/<device>/<node>/<property>``; booleans as ``true`` / ``false``."""
    payload = ("true" if value else "false") if isinstance(value, bool) else value
    return f"{base}/{device}/{node}/{prop}", payload.encode()


def render_stats(device: str, name: str, value: str, *, base: str = "homie") -> tuple[str, bytes]:
    return f"{base}/{device}/$stats/{name}", value.encode()
