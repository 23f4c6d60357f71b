"""ESPHome (nodes using the ``mqtt:`` client component): parses and renders their MQTT messages. Pure.

From ESPHome's documentation:

* MQTT Client Component (https://esphome.io/components/mqtt.html): every topic starts with the node's
  ``topic_prefix`` (default: the node name; it may contain ``/``, e.g. ``home/living_room``). A component
  publishes its state on ``<topic_prefix>/<component type>/<object id>/state`` and listens on
  ``.../command``; state messages are retained by default. The birth message is ``online`` and the last
  will ``offline``, both retained, on ``<topic_prefix>/status``. Logs go to ``<topic_prefix>/debug``.
* Binary Sensor (https://esphome.io/components/binary_sensor/): the state payload is ``ON`` or ``OFF``;
  its ``device_class`` follows Home Assistant's, where for ``door`` on means open and off means closed
  (https://www.home-assistant.io/integrations/binary_sensor/).

Device id: ``<topic_prefix>/<object id>`` for a binary sensor (e.g. ``hall-node/pir``) and
``<topic_prefix>`` for the node's ``status``; other components' states are skipped. With the route option
``node_is_device`` every message of the node is the device ``<topic_prefix>`` (for a node with one
sensor: its online/offline then applies to that sensor, and its other components' states are health).
The route option ``sensor`` names the binary sensor (object id) that is the activity sensor; without it
every binary sensor is one.

Semantics (SPEC section 2): ``status`` online/offline is availability (health). ESPHome sends no device
time. Besides the retained replay (never an observation), a node re-publishes every state when it
reconnects, so ``ON`` counts only as a change from ``OFF`` unless the route sets ``force_update``. A door
is closed on ``OFF`` unless the route says otherwise (``closed_when``). Other binary sensors and other
components' states are skipped (health with ``node_is_device``); commands and logs are skipped.
"""

from __future__ import annotations

from datetime import tzinfo

from sensors.formats._common import DeviceKind, OnOff, availability, binary_reading, text, valid_device
from sensors.payloads import Ignored, ParseResult, Reading, Rejection

STATES = {"ON": True, "OFF": False}


def parse(topic: str, payload: bytes, zone: tzinfo, *, base: str = "", sensor: str | None = None,
          device_kind: DeviceKind = "motion", closed_when: OnOff | None = "off", force_update: bool = False,
          node_is_device: bool = False) -> ParseResult:
    if base and not topic.startswith(base + "/"):
        return Rejection("unknown_topic", f"not an ESPHome topic under {base!r}: {topic!r}")
    levels = topic.split("/")
    last = levels[-1]
    if last == "status" and len(levels) >= 2:
        return _status("/".join(levels[:-1]), payload)
    if last == "debug" and len(levels) >= 2:
        return Ignored("log")
    if last == "command" or (len(levels) >= 5 and levels[-2] == "command"):
        return Ignored("device_command")
    if last != "state" or len(levels) < 4:
        return Rejection("unknown_topic", f"ESPHome topics are <prefix>/<component>/<name>/state or "
                         f"<prefix>/status, got {topic!r}")
    node, component, name = "/".join(levels[:-3]), levels[-3], levels[-2]
    device = node if node_is_device else f"{node}/{name}"
    if not valid_device(device):
        return Rejection("unknown_topic", f"no ESPHome node in {topic!r}")
    value = text(payload)
    if component != "binary_sensor" or (sensor is not None and name != sensor):
        if not node_is_device:
            return Ignored("not_a_watched_sensor")
        return Reading(device=node, kind="heartbeat", value=f"{component}/{name}={value[:50]}")
    if value not in STATES:
        return Rejection("invalid_field", f"binary_sensor state must be ON or OFF, got {value[:40]!r}", device)
    return binary_reading(device, device_kind, STATES[value], closed_when=closed_when,
                          change_only=not force_update)


def _status(node: str, payload: bytes) -> ParseResult:
    if not valid_device(node):
        return Rejection("unknown_topic", f"no ESPHome node in {node!r}")
    return availability(node, payload, online="online", offline="offline", what="status", node=True)


def render_binary_sensor(node: str, name: str, on: bool) -> tuple[str, bytes]:
    """``<topic_prefix>/binary_sensor/<object id>/state`` ``ON`` / ``OFF``."""
    return f"{node}/binary_sensor/{name}/state", b"ON" if on else b"OFF"


def render_sensor(node: str, name: str, value: float) -> tuple[str, bytes]:
    """``<topic_prefix>/sensor/<object id>/state`` with a number (e.g. WiFi signal, battery voltage)."""
    return f"{node}/sensor/{name}/state", f"{value:g}".encode()


def render_status(node: str, online: bool) -> tuple[str, bytes]:
    """The birth / last-will message on ``<topic_prefix>/status``."""
    return f"{node}/status", b"online" if online else b"offline"
