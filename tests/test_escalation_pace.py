"""The chain places calls and SMS at the provider's rate (``notify.calls_per_second``, ``sms_per_second``,
``burst``): a mass silence opens more chains at once than a provider account takes, so the steps start
at the rate, panic alarms first, each exactly once, none lost. The service clock is the manual clock;
the rate runs on the injected real-time clock (``pace_clock``), moved by the test. SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from alerts.models import AlarmKind, AttemptStatus
from tests.harness import Site, obs

H = timedelta(hours=1)
GRID = "+8613800000001"
RESIDENTS = 12


def community() -> dict:
    residents = [{"ref": f"r{i}", "name": f"住户{i}", "micro_grid": "G/M", "phone": f"+86139{i:08d}",
                  "devices": [{"id": f"pir-{i}", "kind": "motion"}]} for i in range(RESIDENTS)]
    residents[-1]["devices"].append({"id": "sos", "kind": "button"})
    return {"community": {"name": "pace"}, "grids": [{"name": "G", "micro_grids": [{"name": "M"}]}],
            "workers": [{"name": "网格员", "phone": GRID, "role": "grid_worker", "grid": "G"}],
            "residents": residents}


class Seconds:
    """Real time as the test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_mass_silence_is_called_at_the_providers_rate_panic_first_each_once(make_site: Callable[..., Site]) -> None:
    seconds = Seconds()
    site = make_site(community=community(), pace_clock=seconds,
                     notify={"calls_per_second": 0.5, "sms_per_second": 1, "burst": 3})
    site.activity(timedelta(0), *(f"pir-{i}" for i in range(RESIDENTS)))
    site.rules_at(14 * H)  # every resident silent for the window: one alarm each, all at one instant
    site.record(14 * H, obs("sos", "button", value="single"))  # then a panic press (it resolves its alarm)
    site.rules_at(14 * H)
    panic = site.alarm(AlarmKind.PANIC)
    inactivity = site.alarms(AlarmKind.INACTIVITY, state="open")
    assert len(inactivity) == RESIDENTS - 1

    placed: list[tuple[float, int, str]] = []  # (second, alarm, channel) of every attempt handed over
    seen: set[int] = set()
    for _ in range(60):
        site.escalate()  # the service clock stands still: every step is due, only the rate holds them
        for attempt in site.attempts():
            if attempt.id not in seen and attempt.sent_at is not None:
                seen.add(attempt.id)
                placed.append((seconds.now, attempt.alarm_id, attempt.channel))
        if len(seen) >= 2 + len(inactivity):
            break
        seconds.now += 1.0

    # the panic alarm's step first (its grid worker's SMS and call), before any check call
    assert placed[0][1] == panic.id and {channel for _, alarm, channel in placed if alarm == panic.id} == {"sms",
                                                                                                          "voice"}
    first_check = min(i for i, (_, alarm, _) in enumerate(placed) if alarm != panic.id)
    assert all(alarm == panic.id for _, alarm, _ in placed[:first_check])
    # every check call placed, each exactly once
    calls = Counter(alarm for _, alarm, channel in placed if channel == "voice" and alarm != panic.id)
    assert set(calls) == {a.id for a in inactivity} and set(calls.values()) == {1}
    assert Counter((a.alarm_id, a.step, a.channel, a.phone) for a in site.attempts()).most_common(1)[0][1] == 1
    assert not [a for a in site.attempts() if a.status == AttemptStatus.PENDING]
    # at the rate: by second t at most burst + rate * t calls
    for t in sorted({at for at, _, _ in placed}):
        assert sum(1 for at, _, channel in placed if channel == "voice" and at <= t) <= 3 + 0.5 * t
    last = max(at for at, _, _ in placed)
    assert last >= (len(inactivity) + 1 - 3) / 0.5 - 1  # spread out: the last call waited for its turn
    assert all(alarm.step == 0 for alarm in site.alarms(AlarmKind.INACTIVITY, state="open"))


def test_a_panic_is_called_at_once_however_long_the_queue(make_site: Callable[..., Site]) -> None:
    seconds = Seconds()
    site = make_site(community=community(), pace_clock=seconds,
                     notify={"calls_per_second": 0.5, "sms_per_second": 1, "burst": 3})
    site.activity(timedelta(0), *(f"pir-{i}" for i in range(RESIDENTS)))
    site.at(14 * H)  # the mass silence: the first 3 check calls go, the rest wait for the rate
    assert len([a for a in site.attempts() if a.sent_at is not None]) == 3
    site.record(14 * H, obs("sos", "button", value="single"))
    site.at(14 * H)  # the rate's clock has not moved: the panic's calls go all the same
    panic = site.alarm(AlarmKind.PANIC)
    placed = [a for a in site.attempts() if a.alarm_id == panic.id and a.sent_at is not None]
    assert {a.channel for a in placed} == {"sms", "voice"}
    assert len([a for a in site.attempts() if a.sent_at is not None]) == 5  # and no check call more
