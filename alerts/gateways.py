"""Ingest writes for gateways: a gateway's own online/offline report, and the devices heard through one.

A gateway is what a group of devices reports through: a Zigbee2MQTT bridge (external id = its base topic,
its ``bridge/state`` is its last will), a hub or a building's uplink named by native devices. Tasmota,
ESPHome and Shelly devices speak to the broker themselves: each is its own gateway, and its last will is
the device's own availability (a device-offline matter); they hang off no shared gateway.

A report from a gateway nobody registered is quarantined like an unknown device's message. Functions take
the session and do not commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts.models import Device, Gateway
from alerts.observations import Observation, Quarantined

LAST_SEEN_STEP = timedelta(seconds=30)


def record_reports(session: Session, reports: Sequence[Observation], now: datetime) -> list[Quarantined]:
    """Store gateways' own availability reports; returns those of unknown gateways, to quarantine."""
    names = {o.device for o in reports}
    known = {g.external_id: g for g in session.scalars(select(Gateway).where(Gateway.external_id.in_(names)))}
    held: list[Quarantined] = []
    for report in reports:
        gateway = known.get(report.device)
        if gateway is None:
            held.append(Quarantined(report.topic, report.payload, "unknown_gateway",
                                    f"no gateway with external id {report.device!r} (add it to accept it)",
                                    report.delivery_key, report.device, report.redelivery))
            continue
        if report.availability is not None and report.availability != gateway.availability:
            gateway.availability, gateway.availability_at = report.availability, now
        gateway.online = report.availability != "offline"
        if gateway.last_seen_at is None or gateway.last_seen_at < now:
            gateway.last_seen_at = now
    return held


def heard_through(session: Session, observations: Sequence[Observation], now: datetime) -> None:
    """Devices' messages that came through a named gateway: the gateway is alive (last seen, and online:
    a bridge whose devices talk is up whatever its last will said), and a device not yet linked to a
    gateway is linked to this one. One statement per gateway of the batch; nothing when none is named."""
    by_gateway: dict[str, set[str]] = defaultdict(set)
    for o in observations:
        if o.gateway:
            by_gateway[o.gateway].add(o.device)
    if not by_gateway:
        return
    rows = session.execute(select(Gateway.id, Gateway.external_id, Gateway.online, Gateway.last_seen_at)
                           .where(Gateway.external_id.in_(by_gateway)).order_by(Gateway.id)).all()
    for gateway_id, external_id, online, seen in rows:
        if not online:
            session.execute(update(Gateway).where(Gateway.id == gateway_id).values(
                last_seen_at=now, online=True, availability="online", availability_at=now))
        elif seen is None or seen < now - LAST_SEEN_STEP:  # not a row lock per batch: shown, never decided on
            session.execute(update(Gateway).where(Gateway.id == gateway_id).values(last_seen_at=now))
        session.execute(update(Device).where(Device.external_id.in_(sorted(by_gateway[external_id])),
                                             Device.gateway_id.is_(None)).values(gateway_id=gateway_id)
                        .execution_options(synchronize_session=False))
