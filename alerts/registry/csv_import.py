"""Bulk import of residents from CSV: all or nothing, idempotent, any of the three datums.

The format (documented with an example in ``docs/admin.md``; ``config/residents.example.csv``):
UTF-8 with or without a byte-order mark, a header row, one resident per line. Columns, in any order;
only ``ref`` and ``name`` are required, the others may be left out or empty:

``ref`` (a stable id: importing again updates the resident with that ref), ``name``, ``birth_year``,
``address``, ``latitude``, ``longitude`` (in the datum of the import), ``phone``, ``grid``,
``micro_grid`` (both or neither; created if new), ``consent`` (YYYY-MM-DD, the date of consent to
monitoring), ``window_hours`` (an override of the inactivity window), ``routine`` (a time-window rule
such as ``07:00-10:00``: no activity inside it raises an alarm), ``bathroom_dwell_hours`` and
``bathroom_door_dwell_hours`` (dwell limits, :mod:`alerts.dwell`), ``device_ids`` (separated by ``;``, each
``id``, ``id:kind`` or ``id:kind:room`` with kind motion, door, button or meter, motion by default, and room
bathroom, bedroom, kitchen, living_room or entrance, or its Chinese name),
``contact_name``, ``contact_phone``, ``contact2_name``, ``contact2_phone``.

Every line is checked before anything is written; a file with any bad line imports nothing and the
error lists each line number with its reason. The writing reuses
:func:`alerts.registry.community.load_community`, so a resident's ref, a device's id, a grid's and a
micro-grid's names and a contact's phone number are the keys: importing the same file twice changes
nothing. The file is the truth for a resident's own fields (a column left out or empty clears that
field, e.g. ``phone``), except ``grid``/``micro_grid``, which only move a resident when given;
contacts and devices are added, never removed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import dwell, routine, rules
from alerts.models import Community, Device, DeviceKind, Grid, Resident
from alerts.refusals import Refusal
from alerts.registry import geo
from alerts.registry.community import CommunityFileError, load_community

COLUMNS = ("ref", "name", "birth_year", "address", "latitude", "longitude", "phone", "grid", "micro_grid",
           "consent", "window_hours", "routine", "device_ids", "contact_name", "contact_phone", "contact2_name",
           "contact2_phone", "gateway", "bathroom_dwell_hours", "bathroom_door_dwell_hours")
REQUIRED = ("ref", "name")
MAX_ERRORS = 100


@dataclass(frozen=True)
class LineError:
    """A bad line and why (a :class:`Refusal`, worded in the reader's language by the API)."""

    line: int
    reason: Refusal

    def __post_init__(self) -> None:
        if not isinstance(self.reason, Refusal):
            object.__setattr__(self, "reason", Refusal(str(self.reason)))

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class LineRefusal(Refusal, ValueError):
    """Why one line of the file cannot be imported."""


class CsvImportError(ValueError):
    """The file was not imported; ``errors`` says why, line by line."""

    def __init__(self, errors: list[LineError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors[:10]) + (" ..." if len(errors) > 10 else ""))


@dataclass
class ImportResult:
    lines: int = 0
    created: int = 0
    updated: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def decode(data: bytes) -> str:
    """UTF-8, with or without a BOM (Excel writes one)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvImportError([LineError(1, Refusal("csv_not_utf8", why=exc.reason, at=exc.start))]) \
            from None


def parse(text: str, datum: geo.Datum) -> list[tuple[int, dict[str, Any]]]:
    """The residents of a CSV text as ``(line number, item for load_community)``, coordinates in WGS-84.
    Raises :class:`CsvImportError` with every bad line."""
    text = text.removeprefix("\ufeff")
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="_extra")
    header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    errors = _header_errors(header)
    if errors:
        raise CsvImportError(errors)
    reader.fieldnames = header
    items: list[tuple[int, dict[str, Any]]] = []
    refs: dict[str, int] = {}
    device_lines: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if row.get("_extra"):
            errors.append(LineError(line, Refusal("csv_fields", count=len(header) + len(row["_extra"]),
                                                     header=len(header))))
            continue
        values = {k: (v or "").strip() for k, v in row.items() if k != "_extra"}
        if not any(values.values()):
            continue
        try:
            item = _item(values, datum)
        except ValueError as exc:
            errors.append(LineError(line, exc if isinstance(exc, Refusal) else Refusal(str(exc))))
            continue
        if item["ref"] in refs:
            errors.append(LineError(line, Refusal("csv_ref_twice", ref=item["ref"], line=refs[item["ref"]])))
            continue
        refs[item["ref"]] = line
        for dev in item["devices"]:
            if dev["id"] in device_lines:
                errors.append(LineError(line, Refusal("csv_device_twice", device=dev["id"],
                                                      line=device_lines[dev["id"]])))
            device_lines[dev["id"]] = line
        items.append((line, item))
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise CsvImportError(errors)
    if not items:
        raise CsvImportError([LineError(1, Refusal("csv_empty"))])
    return items


def import_residents(session: Session, data: bytes | str, datum: geo.Datum | str, now: datetime,
                     default: rules.Limits, *, community: str | None = None, actor: str = "csv import",
                     offline_after: timedelta = timedelta(hours=2)) -> ImportResult:
    """Check the whole file, then create or update its residents (and the grids, micro-grids,
    devices and contacts it names) in ``community`` (a name; the only community there is when
    omitted; created when new). Does not commit; raises :class:`CsvImportError` before writing
    anything if any line is bad."""
    text = decode(data) if isinstance(data, bytes) else data
    items = parse(text, geo.Datum.parse(str(datum)))
    target = _community(session, community)
    errors = _conflicts(session, items)
    if errors:
        raise CsvImportError(errors)
    refs = [item["ref"] for _, item in items]
    existing = set(session.scalars(select(Resident.external_ref).where(Resident.external_ref.in_(refs))))
    payload = {
        "community": {"name": target.name, "latitude": target.latitude, "longitude": target.longitude},
        "grids": _grids(session, target, [item for _, item in items]),
        "residents": [item for _, item in items],
    }
    try:
        counts = load_community(session, payload, now, default, actor=actor, offline_after=offline_after)
    except CommunityFileError as exc:  # the checks above should have caught it
        raise CsvImportError([LineError(1, Refusal.of(exc))]) from exc
    return ImportResult(lines=len(items), created=len(items) - len(existing), updated=len(existing), counts=counts)


def _header_errors(header: list[str]) -> list[LineError]:
    if not header:
        return [LineError(1, Refusal("csv_no_header"))]
    errors = []
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        errors.append(LineError(1, Refusal("csv_unknown_columns", unknown=", ".join(map(repr, unknown)),
                                                   columns=", ".join(COLUMNS))))
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        errors.append(LineError(1, Refusal("csv_missing_columns", columns=", ".join(missing))))
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        errors.append(LineError(1, Refusal("csv_repeated_columns", columns=", ".join(repeated))))
    return errors


def _item(values: dict[str, str], datum: geo.Datum) -> dict[str, Any]:
    ref, name = values.get("ref", ""), values.get("name", "")
    if not ref:
        raise LineRefusal("csv_ref_empty")
    if not name:
        raise LineRefusal("csv_name_empty")
    item: dict[str, Any] = {"ref": ref, "name": name, "address": values.get("address", ""),
                            "phone": _phone(values.get("phone", "")) or None}
    if values.get("birth_year"):
        item["birth_year"] = _number(values["birth_year"], "birth_year", int, 1880, 2100)
    lat, lon = values.get("latitude", ""), values.get("longitude", "")
    if bool(lat) != bool(lon):
        raise LineRefusal("both_coordinates")
    if lat:
        point = (_number(lat, "latitude", float, -90, 90), _number(lon, "longitude", float, -180, 180))
        item["latitude"], item["longitude"] = geo.to_wgs84(*point, datum)
    grid, micro = values.get("grid", ""), values.get("micro_grid", "")
    if bool(grid) != bool(micro):
        raise LineRefusal("csv_grid_both")
    if "/" in grid or "/" in micro:
        raise LineRefusal("csv_slash")
    if grid:
        item["micro_grid"] = f"{grid}/{micro}"
    if values.get("consent"):
        try:
            item["consent"] = date.fromisoformat(values["consent"])
        except ValueError:
            raise LineRefusal("csv_consent", value=values["consent"]) from None
    if values.get("window_hours"):
        item["window_hours"] = _number(values["window_hours"], "window_hours", float, 0.1, 24 * 14)
    if values.get("routine"):
        try:
            item["routine"] = str(routine.Window.parse(values["routine"]))
        except routine.WindowError as exc:
            raise LineRefusal("csv_routine", why=exc) from None
    for name in ("bathroom_dwell_hours", "bathroom_door_dwell_hours"):
        if values.get(name):
            item[name] = _number(values[name], name, float, 0.1, 24 * 7)
    item["devices"] = _devices(values.get("device_ids", ""))
    if values.get("gateway"):  # the gateway the line's devices report through (Zigbee2MQTT: its base topic)
        for device in item["devices"]:
            device["gateway"] = values["gateway"].strip()
    item["contacts"] = [c for c in (_contact(values, "contact"), _contact(values, "contact2")) if c]
    for position, contact in enumerate(item["contacts"], start=1):
        contact["priority"] = position
    return item


def _devices(value: str) -> list[dict[str, str]]:
    devices = []
    for part in (p.strip() for p in value.split(";")):
        if not part:
            continue
        device_id, _, rest = part.partition(":")
        kind, _, room_text = rest.partition(":")
        kind = kind.strip().lower() or DeviceKind.MOTION.value
        if kind not in {k.value for k in DeviceKind}:
            raise LineRefusal("csv_device_kind", device=device_id, kind=kind)
        if not device_id.strip():
            raise LineRefusal("csv_device_id", part=part)
        device = {"id": device_id.strip(), "kind": kind}
        try:
            room = dwell.parse_room(room_text)
        except dwell.RoomError:
            raise LineRefusal("csv_device", device=device_id.strip(),
                              why=Refusal("room", text=room_text, choices=dwell.ROOM_CHOICES_WORDED)) from None
        if room is not None:
            device["room"] = room.value
        devices.append(device)
    return devices


def _contact(values: dict[str, str], prefix: str) -> dict[str, Any] | None:
    name, phone = values.get(f"{prefix}_name", ""), _phone(values.get(f"{prefix}_phone", ""))
    if bool(name) != bool(phone):
        raise LineRefusal("csv_contact_both", prefix=prefix)
    return {"name": name, "phone": phone} if name else None


def _number(value: str, name: str, kind: type[int] | type[float], low: float, high: float) -> Any:
    try:
        number = kind(value)
    except ValueError:
        raise LineRefusal("csv_number", name=name, value=value) from None
    if not low <= number <= high:
        raise LineRefusal("csv_number_range", name=name, value=value, low=low, high=high)
    return number


def _phone(value: str) -> str:
    return value.replace(" ", "").replace("-", "")


def _community(session: Session, name: str | None) -> Community:
    if name:
        found = session.scalars(select(Community).where(Community.name == name)).first()
        if found is None:
            found = Community(name=name)
            session.add(found)
            session.flush()
        return found
    communities = session.scalars(select(Community).limit(2)).all()
    if len(communities) != 1:
        raise CsvImportError([LineError(1, Refusal("csv_community", how=Refusal(
            "communities_several" if communities else "communities_none")))])
    return communities[0]


def _conflicts(session: Session, items: list[tuple[int, dict[str, Any]]]) -> list[LineError]:
    """A device of the file that already belongs to another resident is an error, not a silent move."""
    owner_of = {dev["id"]: (line, item["ref"]) for line, item in items for dev in item["devices"]}
    if not owner_of:
        return []
    rows = session.execute(
        select(Device.external_id, Resident.external_ref, Resident.id)
        .join(Resident, Device.resident_id == Resident.id)
        .where(Device.external_id.in_(list(owner_of)))
    ).all()
    errors = []
    for external_id, ref, resident_id in rows:
        line, wanted = owner_of[external_id]
        if ref != wanted:
            errors.append(LineError(line, Refusal("csv_device_owned", device=external_id,
                                                  resident=ref or f"#{resident_id}")))
    return sorted(errors, key=lambda e: e.line)


def _grids(session: Session, community: Community, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The grids the file names, with the overrides they already have (load_community sets them)."""
    wanted: dict[str, set[str]] = {}
    for item in items:
        if "micro_grid" in item:
            grid, micro = item["micro_grid"].split("/", 1)
            wanted.setdefault(grid, set()).add(micro)
    stored = {g.name: g for g in session.scalars(select(Grid).where(Grid.community_id == community.id,
                                                                   Grid.name.in_(list(wanted))))}
    grids = []
    for name, micros in sorted(wanted.items()):
        grid = stored.get(name)
        grids.append({
            "name": name, "micro_grids": [{"name": m} for m in sorted(micros)],
            "window_hours": grid.inactivity_window_s / 3600 if grid and grid.inactivity_window_s else None,
            "early_warning_hours": grid.early_warning_s / 3600 if grid and grid.early_warning_s else None,
            "routine": grid.routine_window if grid else None,
            "bathroom_dwell_hours": grid.bathroom_dwell_s / 3600 if grid and grid.bathroom_dwell_s else None,
            "bathroom_door_dwell_hours": grid.bathroom_door_dwell_s / 3600
            if grid and grid.bathroom_door_dwell_s else None,
        })
    return grids
