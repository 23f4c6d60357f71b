"""Correlated silence: when many homes of one group (a gateway, a micro-grid, a grid, the community) go quiet
together, that is an infrastructure incident, not many residents in danger. Pure: the tick step in
:mod:`alerts.infrastructure` feeds these functions what the database says and acts on their answers.

A home's *last seen* is the last message of any kind (activity, heartbeat, battery, availability) from any
of its devices in the group. At ``now``, in one group:

* the homes *reporting* are those heard within ``lookback`` (a home that was already silent before that
  is a dead device's business, not an outage's);
* a reporting home is *overdue* once it has been silent for longer than its own usual longest gap between
  two messages (over the lookback) and than ``window``: a home that only sends an hourly heartbeat is not
  overdue after ten minutes, a home whose resident moves every few minutes is;
* the silence is *correlated* when at least ``min_homes`` overdue homes were last heard within one
  ``window`` of each other (they stopped together) and make at least ``share`` of those homes plus the
  group's homes heard since then: an outage silences the whole group, while in a quiet evening other
  homes of the group still report.

Homes quiet at random instants (a resident asleep, hourly heartbeats) are not overdue, and their last
messages are spread over the hour; an outage stops every home at once, and no home of the group is heard
after it. The cheap first pass takes every home's usual gap as the window; only the homes it then finds
have their gaps read from the stored events. A gateway's own offline report (a Zigbee2MQTT bridge's
``bridge/state``) is a correlated silence of its group at once.

The incident opened is the one of the *largest* group that explains the silence (the community, not its
twelve gateways); smaller open incidents inside it are merged into it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

HEARD_SLACK = timedelta(minutes=2)
# a smaller group whose own silence holds this share of a larger group's silent homes explains it (the rest
# being homes that happened to be quiet too)
MOSTLY = 0.75
# group levels, largest first
LEVELS = ("community", "grid", "micro_grid", "gateway")


@dataclass(frozen=True)
class IncidentLimits:
    min_homes: int = 3
    share: float = 0.5
    window: timedelta = timedelta(minutes=10)
    lookback: timedelta = timedelta(hours=2)
    back_share: float = 0.5  # the share of its homes heard again that ends an incident
    # how often the tick judges correlated silence (service clock; at once after a gateway's own report):
    # when a silence could be found the pass reads every device of the district (~1-2 s at 100,000 homes),
    # and it judges 10-minute windows
    every: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class Group:
    key: str  # "community:1", "grid:3", "micro_grid:5", "gateway:2"
    label: str
    # resident id -> last seen (any message from the home's devices in this group), None if never
    homes: Mapping[int, datetime | None]
    # a gateway's own report: offline since this instant (None: online or not a gateway)
    offline_since: datetime | None = None

    @property
    def level(self) -> int:
        return LEVELS.index(self.key.split(":", 1)[0])


@dataclass(frozen=True)
class Silence:
    """A correlated silence found in one group: the homes it explains and when it began."""

    group: Group
    homes: frozenset[int]
    since: datetime  # the last message heard from those homes (or the gateway's offline report)
    reporting: int  # how many homes of the group were reporting
    reason: str

    @property
    def key(self) -> str:
        return self.group.key


@dataclass(frozen=True)
class OpenIncident:
    alarm_id: int
    group: str
    homes: frozenset[int]
    since: datetime


@dataclass(frozen=True)
class Plan:
    """What the tick should do: open these incidents, and merge these open ones into the new ones."""

    open: list[Silence] = field(default_factory=list)
    merge: dict[int, str] = field(default_factory=dict)  # open incident id -> the group key it joins
    extend: dict[int, frozenset[int]] = field(default_factory=dict)  # open incident id -> homes it now covers


def silence_in(group: Group, now: datetime, limits: IncidentLimits, stale: Mapping[int, datetime] | None = None,
               gaps: Mapping[int, timedelta] | None = None) -> Silence | None:
    """The correlated silence in ``group`` at ``now``, or None.

    ``gaps`` maps a home to its usual longest gap between two messages (over the lookback): a home is
    *overdue* once it has been silent for longer than that and than the window, so a home that reports
    hourly is not overdue after ten minutes. Without ``gaps`` every home's gap is taken as the window
    (a cheap first pass: the tick asks for the gaps of the homes it then finds, and asks again; in that
    second pass a home whose gap was not asked for is not judged overdue).
    ``stale`` maps a home to the start of an earlier incident that covered it: a home last heard before
    that is a straggler of that incident (not yet heard again), never the start of a new one."""
    stale = stale or {}
    if group.offline_since is not None and group.offline_since <= now:
        return Silence(group, frozenset(group.homes), group.offline_since, len(group.homes),
                       f"gateway {group.label} reported offline")
    reporting: list[tuple[datetime, int]] = []
    for home, seen in group.homes.items():
        if seen is None or seen < now - limits.lookback:
            continue
        if home in stale and seen <= stale[home]:
            continue
        reporting.append((seen, home))
    unknown = limits.lookback if gaps else limits.window  # the gap of a home not asked for
    overdue = sorted((seen, home) for seen, home in reporting
                     if now - seen >= max(limits.window, (gaps or {}).get(home, unknown)))
    if len(overdue) < limits.min_homes:
        return None
    best: list[tuple[datetime, int]] = []
    start = 0
    for end in range(len(overdue)):  # the largest run of last-heard instants within one window
        while overdue[end][0] - overdue[start][0] > limits.window:
            start += 1
        if end - start + 1 >= len(best):  # ties: the latest run
            best = overdue[start:end + 1]
    since = best[-1][0]
    # the group still talks: homes heard after the silence began (messages in flight at the moment an outage
    # struck, a minute or two before it, are not a sign of life after it)
    slack = min(HEARD_SLACK, limits.window / 5)
    heard = sum(1 for seen, _ in reporting if seen > since + slack)
    needed = max(limits.min_homes, math.ceil(limits.share * (len(best) + heard) - 1e-9))
    if len(best) < needed:
        return None
    return Silence(group, frozenset(home for _, home in best), since, len(reporting),
                   f"{len(best)} of {len(reporting)} homes of {group.label} silent together, none heard since")


def usual_gap(instants: Sequence[datetime], lookback: timedelta) -> timedelta:
    """A home's longest gap between two messages within the lookback before its last one (``instants``
    sorted), counting the gap from the lookback's start to its first message: a home whose history is
    shorter than that (just installed, just booted) is given the benefit of the doubt."""
    if not instants:
        return lookback
    distinct = sorted(set(instants))
    last = distinct[-1]
    recent = [t for t in distinct if t >= last - lookback]
    points = [last - lookback, *recent]
    return max(b - a for a, b in itertools.pairwise(points))


def plan(groups: Iterable[Group], now: datetime, limits: IncidentLimits, open_incidents: Sequence[OpenIncident],
         stale: Mapping[int, datetime] | None = None, gaps: Mapping[int, timedelta] | None = None) -> Plan:
    """The incidents to open at ``now``: the largest group that explains the silence — the community when
    its silent homes span several gateways, the gateway when they all hang off it. A silence inside the
    group of an open
    incident (its homes all belong to that group) extends that incident to the homes found; a silence
    whose homes open incidents already cover is not a new one; open incidents of smaller groups inside a
    new one are merged into it."""
    result = Plan()
    ordered = sorted(groups, key=lambda g: (g.level, -len(g.homes), g.key))
    members = {g.key: frozenset(g.homes) for g in ordered}
    covered: set[int] = set()
    for incident in open_incidents:
        covered |= incident.homes
    current = list(open_incidents)
    opened_keys = {i.group for i in open_incidents}
    found_in = {g.key: f for g in ordered if (f := silence_in(g, now, limits, stale, gaps)) is not None}
    for group in ordered:
        found = found_in.get(group.key)
        if found is None:
            continue
        if any(other.key != group.key and len(members[other.key]) < len(members[group.key])
               and len(found.homes & other.homes) >= max(limits.min_homes, MOSTLY * len(found.homes))
               for other in found_in.values()):
            continue  # a smaller group holds (nearly) the whole silence: its gateway, its building explains it
        owner = next((i for i in current if found.homes <= members.get(i.group, i.homes)
                      and LEVELS.index(i.group.split(":", 1)[0]) <= group.level), None)
        if owner is not None:  # the open incident's group holds it: that incident grows
            if not found.homes <= owner.homes | result.extend.get(owner.alarm_id, frozenset()):
                result.extend[owner.alarm_id] = result.extend.get(owner.alarm_id, frozenset()) | found.homes
            covered |= found.homes
            continue
        if group.key in opened_keys:
            continue
        if found.homes and found.homes <= covered:
            continue
        if not found.homes and group.offline_since is None:
            continue
        result.open.append(found)
        for incident in open_incidents:
            if incident.alarm_id in result.merge:
                continue
            level = LEVELS.index(incident.group.split(":", 1)[0])
            if level > group.level and members.get(incident.group, incident.homes) <= members[group.key]:
                result.merge[incident.alarm_id] = group.key
        covered |= found.homes
        opened_keys.add(group.key)
        current.append(OpenIncident(alarm_id=-len(result.open), group=group.key, homes=found.homes,
                                    since=found.since))
    return result


def heard_again(homes: Mapping[int, datetime | None], since: datetime, limits: IncidentLimits) -> bool:
    """The incident's group reports again: enough of its homes (a share, at least one) heard after it began."""
    if not homes:
        return False
    back = sum(1 for seen in homes.values() if seen is not None and seen > since)
    return back >= max(1, math.ceil(limits.back_share * len(homes) - 1e-9))


def gateway_back(offline_since: datetime | None, availability: str | None) -> bool:
    """A gateway incident opened on the gateway's own offline report ends with its online report."""
    return offline_since is None or availability == "online"


def backlog_explains(activity_at: datetime | None, opened_at: datetime, window: timedelta) -> bool:
    """Activity delivered late (a gateway's backlog) that happened within the window before the alarm
    opened: the alarm should never have been raised, the gap it saw is filled."""
    return activity_at is not None and activity_at + window > opened_at
