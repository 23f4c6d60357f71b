"""Home Assistant style MQTT state topics (devices and firmwares that publish what Home Assistant's MQTT
binary sensor reads): parses and renders them. Pure.

From Home Assistant's documentation:

* MQTT Binary sensor (https://www.home-assistant.io/integrations/binary_sensor.mqtt/): the state is a
  message on ``state_topic`` equal to ``payload_on`` (default ``ON``) or ``payload_off`` (default
  ``OFF``); availability is a message on ``availability_topic`` equal to ``payload_available`` (default
  ``online``) or ``payload_not_available`` (default ``offline``). States published with the retain flag
  are shown at startup; ``force_update`` makes a repeated identical state an update of its own (for
  sensors that only ever send ``ON`` and let ``off_delay`` turn them off).
* Binary sensor device classes (https://www.home-assistant.io/integrations/binary_sensor/): ``motion``:
  on means motion detected; ``door`` / ``opening``: on means open, off means closed.

Topics are whatever the device was configured with, so a route's filter says where they are, and the
device id is the part of the topic the filter's wildcards match: route ``home/+/motion`` and topic
``home/hall-pir/motion`` give ``hall-pir``; route ``home/+/availability`` gives the same ``hall-pir`` for its
availability. (A filter without wildcards names a single device: the topic itself.)

Semantics (SPEC section 2): a payload equal to ``payload_available`` / ``payload_not_available`` is
availability (health); one equal to ``payload_on`` / ``payload_off`` is the sensor's state, read as the
route's ``device_kind``; anything else is quarantined (JSON payloads with a value template are not
supported). The payloads are compared exactly, as Home Assistant does. No device time is sent. A state
topic may be re-published unchanged, so ``ON`` counts only as a change from ``OFF`` unless the route sets
``force_update`` (as Home Assistant's own option of that name). A door is closed on ``OFF`` unless the
route says otherwise (``closed_when``). Retained replays are never observations (ingest skips them).
"""

from __future__ import annotations

from datetime import tzinfo

from sensors.formats._common import DeviceKind, OnOff, binary_reading, valid_device
from sensors.payloads import Availability, ParseResult, Reading, Rejection


def device_of(topic_filter: str, topic: str) -> str:
    """The topic levels matched by the filter's ``+`` and ``#`` (the whole topic for a plain filter)."""
    f_parts, t_parts = topic_filter.split("/"), topic.split("/")
    matched: list[str] = []
    for i, part in enumerate(f_parts):
        if part == "#":
            matched.extend(t_parts[i:])
            break
        if part == "+" and i < len(t_parts):
            matched.append(t_parts[i])
    return "/".join(matched) if ("+" in f_parts or "#" in f_parts) else topic


def parse(topic: str, payload: bytes, zone: tzinfo, *, topic_filter: str = "#", device_kind: DeviceKind = "motion",
          closed_when: OnOff | None = "off", force_update: bool = False, payload_on: str = "ON",
          payload_off: str = "OFF", payload_available: str = "online",
          payload_not_available: str = "offline") -> ParseResult:
    device = device_of(topic_filter, topic)
    if not valid_device(device):
        return Rejection("unknown_topic", f"the route {topic_filter!r} names no device in {topic!r}")
    value = payload.decode("utf-8", "replace")
    if value in (payload_available, payload_not_available):
        availability: Availability = "online" if value == payload_available else "offline"
        return Reading(device=device, kind="availability", availability=availability, value=availability)
    if value in (payload_on, payload_off):
        return binary_reading(device, device_kind, value == payload_on, closed_when=closed_when,
                              change_only=not force_update)
    expected = ", ".join(repr(p) for p in (payload_on, payload_off, payload_available, payload_not_available))
    return Rejection("invalid_field", f"payload {value[:40]!r} is none of {expected}", device)


def render_state(topic: str, on: bool, *, payload_on: str = "ON", payload_off: str = "OFF") -> tuple[str, bytes]:
    """A binary sensor's state message on its ``state_topic``."""
    return topic, (payload_on if on else payload_off).encode()


def render_availability(topic: str, available: bool, *, payload_available: str = "online",
                        payload_not_available: str = "offline") -> tuple[str, bytes]:
    """A message on the device's ``availability_topic``."""
    return topic, (payload_available if available else payload_not_available).encode()
