"""The duty group's robot: WeCom (企业微信) or DingTalk group robot webhooks, text and markdown.

:class:`DutyGroup` tells the centre's group of each new alarm (a resident's alarm with its code and a
link to the screen; a blind state: the system alarm; any other kind, e.g. an infrastructure incident,
generically) and sends a morning summary (open alarms, devices offline, yesterday's alarms and response
times). Each alarm notice is recorded like an attempt (an ``escalation_attempts`` row, channel ``wecom``
/ ``dingtalk``, step -2, outside the chain: queued, then sent or failed); the summary is recorded in the
audit log. Exactly once across processes: the row is inserted with the alarm locked, the summary's day
claimed with a conditional UPDATE.

Never blocking the chain: notices are queued to :class:`GroupRobot`'s own thread, which keeps to the
robot's documented limit (20 messages a minute, on real time) and retries the robot's own rate-limit
answer; the chain only enqueues.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import queue
import time
import urllib.error
import urllib.parse
import urllib.request
import zoneinfo
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from alerts.background import Background
from alerts.db import changed, claim
from alerts.models import Alarm, AlarmKind, AlarmState, Attempt, AuditEntry, Device, Resident, WatchStatus
from config.settings import RobotSettings

log = logging.getLogger(__name__)

MAINTENANCE = (AlarmKind.DEVICE_OFFLINE, AlarmKind.LOW_BATTERY)
RATE_LIMITED = {45009, 130101}  # WeCom / DingTalk: too many messages, try later
MAX_TRIES = 5
SUMMARY_KEY = "duty-group-summary"

TEXT: dict[str, dict[str, Any]] = {
    "zh": {"resident": "## 守望告警 {code}\n**{kind}** · {name}，{address}\n> {reason}\n\n"
                       "开始时间 {opened}\n[打开大屏]({link})",
           "system": "## 守望系统告警 {code}（监测中断）\n> {reason}\n\n"
                     "开始时间 {opened}，请立即检查。\n[打开大屏]({link})",
           "other": "## 守望事件 {code}（{kind}）\n> {reason}\n\n开始时间 {opened}\n[打开大屏]({link})",
           "summary": "## 守望早报 {date}\n- 未处理告警：{open}\n- 离线设备：{offline}\n- 昨日告警：{yesterday}\n"
                      "- 昨日平均响应：{response}\n[打开大屏]({link})",
           "none": "无", "minutes": "{m}分钟",
           "kinds": {"inactivity": "长时间无活动", "panic": "紧急按钮", "system": "系统", "device_offline": "设备离线",
                     "low_battery": "电量低", "clock_skew": "设备时钟超前", "routine": "时段内无活动",
                     "rhythm": "作息异常提醒", "early_warning": "无活动预警",
                     "infrastructure": "设施故障（整片无信号）", "dwell_bathroom": "卫生间停留过久",
                     "dwell_bathroom_door": "卫生间关门过久"}},
    "en": {"resident": "## Shouwang alarm {code}\n**{kind}** · {name}, {address}\n> {reason}\n\nSince {opened}\n"
                       "[Open the screen]({link})",
           "system": "## Shouwang system alarm {code} (watch impaired)\n> {reason}\n\nSince {opened}. Check now.\n"
                     "[Open the screen]({link})",
           "other": "## Shouwang incident {code} ({kind})\n> {reason}\n\nSince {opened}\n[Open the screen]({link})",
           "summary": "## Shouwang morning summary {date}\n- Open alarms: {open}\n- Devices offline: {offline}\n"
                      "- Alarms yesterday: {yesterday}\n- Mean response yesterday: {response}\n"
                      "[Open the screen]({link})",
           "none": "none", "minutes": "{m} min",
           "kinds": {"inactivity": "no activity", "panic": "panic button", "system": "system",
                     "device_offline": "device offline", "low_battery": "low battery",
                     "clock_skew": "device clock ahead", "routine": "no activity in time window",
                     "rhythm": "rhythm notice", "early_warning": "early warning",
                     "infrastructure": "infrastructure (an area silent)", "dwell_bathroom": "too long in the bathroom",
                     "dwell_bathroom_door": "bathroom door closed too long"}},
}


class NoticeError(Exception):
    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class RateLimit:
    """At most ``limit`` messages in any ``per`` window of ``clock`` (real time, injected for tests)."""

    def __init__(self, limit: int, per: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.per, self.clock = limit, per, clock
        self._sent: deque[float] = deque()

    def wait(self) -> float:
        """Seconds until one more message may go (0: now)."""
        now = self.clock()
        while self._sent and self._sent[0] <= now - self.per:
            self._sent.popleft()
        return 0.0 if len(self._sent) < self.limit else self._sent[0] + self.per - now

    def take(self) -> None:
        self._sent.append(self.clock())


@dataclass(frozen=True)
class Notice:
    title: str
    markdown: str
    attempt_id: int | None = None  # the attempt row that records it (alarm notices)


class GroupRobot:
    """Posts notices to a WeCom or DingTalk group robot from its own thread, rate-limited."""

    def __init__(self, settings: RobotSettings, *, clock: Callable[[], float] = time.monotonic,
                 done: Callable[[Notice, str | None], None] | None = None) -> None:
        self.settings = settings
        self.kind = settings.kind
        self.limit = RateLimit(settings.per_minute, 60.0, clock)
        self.done = done
        self._queue: queue.Queue[Notice] = queue.Queue()
        self._loop = Background(f"{self.kind}-robot", self._run)
        self._stop = self._loop.stopping
        self.waiting = False  # held back by the rate limit right now
        self.sent = 0

    def start(self) -> GroupRobot:
        self._loop.start()
        return self

    def stop(self) -> None:
        self._loop.stop()

    def enqueue(self, notice: Notice) -> None:
        self._queue.put(notice)

    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                notice = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            error: str | None = "stopped"
            for tries in range(1, MAX_TRIES + 1):
                if not self._hold():
                    break
                self.limit.take()
                try:
                    self.post(notice)
                    error = None
                    self.sent += 1
                    break
                except NoticeError as exc:
                    error = str(exc)
                    log.warning("group notice failed", extra={"error": error, "tries": tries})
                    if not exc.retry:
                        break
            if self.done is not None:
                try:
                    self.done(notice, error)
                except Exception:
                    log.exception("recording a group notice failed")

    def _hold(self) -> bool:
        """Wait for the rate limit (bounded steps, so a stop is seen); False when stopping."""
        while not self._stop.is_set():
            delay = self.limit.wait()
            if delay <= 0:
                self.waiting = False
                return True
            self.waiting = True
            self._stop.wait(min(delay, 0.05))
        return False

    def payload(self, notice: Notice) -> dict[str, Any]:
        if self.kind == "dingtalk":
            return {"msgtype": "markdown", "markdown": {"title": notice.title, "text": notice.markdown}}
        return {"msgtype": "markdown", "markdown": {"content": notice.markdown[:4000]}}

    def url(self) -> str:
        url = self.settings.webhook_url
        if self.kind == "dingtalk" and self.settings.secret:
            stamp = str(int(time.time() * 1000))
            digest = hmac.new(self.settings.secret.encode(), f"{stamp}\n{self.settings.secret}".encode(),
                              hashlib.sha256).digest()
            sign = urllib.parse.quote_plus(base64.b64encode(digest))
            url += ("&" if "?" in url else "?") + f"timestamp={stamp}&sign={sign}"
        return url

    def post(self, notice: Notice) -> None:
        data = json.dumps(self.payload(notice), ensure_ascii=False).encode()
        request = urllib.request.Request(self.url(), data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout.total_seconds()) as response:
                answer = json.loads(response.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise NoticeError(f"{self.kind} robot unreachable: {exc}", retry=True) from exc
        code = int(answer.get("errcode", -1))
        if code != 0:
            raise NoticeError(f"{self.kind} robot errcode {code}: {answer.get('errmsg')}", retry=code in RATE_LIMITED)


class DutyGroup:
    """What the duty group hears of, from the database, exactly once across processes."""

    def __init__(self, engine: Engine, settings: RobotSettings, *, clock: Callable[[], datetime],
                 zone: zoneinfo.ZoneInfo, language: str, screen_url: str,
                 rate_clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.settings, self.clock, self.zone = engine, settings, clock, zone
        self.text = TEXT["en" if language == "en" else "zh"]
        self.screen_url = screen_url
        self.robot = GroupRobot(settings, clock=rate_clock, done=self._done)

    def start(self) -> DutyGroup:
        self.robot.start()
        return self

    def stop(self) -> None:
        self.robot.stop()

    def run(self, now: datetime) -> int:
        """Queue the notices due at ``now``; returns how many. Never raises (logged)."""
        try:
            notices = self._new_alarms(now)
            summary = self._summary(now)
            if summary is not None:
                notices.append(summary)
        except Exception:
            log.exception("duty group notices failed; the chain goes on")
            return 0
        for notice in notices:
            self.robot.enqueue(notice)
        return len(notices)

    def _wanted(self, kind: str) -> bool:
        return kind in self.settings.kinds if self.settings.kinds else kind not in MAINTENANCE

    def _new_alarms(self, now: datetime) -> list[Notice]:
        kind = self.settings.kind
        notices: list[Notice] = []
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            told = select(Attempt.alarm_id).where(Attempt.channel == kind)
            query = (select(Alarm).where(Alarm.state == AlarmState.OPEN, Alarm.id.not_in(told))
                     .order_by(Alarm.id).limit(500))
            for alarm in session.scalars(claim(query, session.get_bind().dialect)).all():
                if not self._wanted(alarm.kind):
                    continue
                title, text = self._alarm_text(session, alarm)
                attempt = Attempt(alarm_id=alarm.id, step=-2, cycle=0, token=0, target="duty_group",
                                  person=f"{kind} group", phone=None, channel=kind, template=f"{kind}_alarm",
                                  params={"code": alarm.code}, created_at=now, claimed_at=now, status="queued",
                                  provider=kind)
                session.add(attempt)
                session.flush()
                notices.append(Notice(title, text, attempt.id))
        return notices

    def _alarm_text(self, session: Session, alarm: Alarm) -> tuple[str, str]:
        t = self.text
        resident = session.get(Resident, alarm.resident_id) if alarm.resident_id else None
        # a dwell limit is a `routine` alarm of its own reason: named by the reason where it has a label
        kind = t["kinds"].get(alarm.reason_code or "") or t["kinds"].get(alarm.kind, alarm.kind)
        values = {"code": alarm.code, "kind": kind, "reason": alarm.reason or "",
                  "opened": alarm.opened_at.astimezone(self.zone).strftime("%m-%d %H:%M"), "link": self.screen_url,
                  "name": resident.name if resident else "", "address": resident.address if resident else ""}
        shape = "system" if alarm.kind == AlarmKind.SYSTEM else "resident" if resident is not None else "other"
        return f"{alarm.code} {values['kind']}", t[shape].format(**values)

    def _summary(self, now: datetime) -> Notice | None:
        if self.settings.summary_at is None:
            return None
        local = now.astimezone(self.zone)
        hour, minute = (int(x) for x in self.settings.summary_at.split(":"))
        if (local.hour, local.minute) < (hour, minute):
            return None
        day = local.date().isoformat()
        with Session(self.engine) as session, session.begin():
            row = session.get(WatchStatus, SUMMARY_KEY, with_for_update=True)
            if row is None:
                session.add(WatchStatus(name=SUMMARY_KEY, updated_at=now, detail={"day": day}))
                session.flush()
            elif row.detail.get("day") == day:
                return None
            else:
                won = changed(session, update(WatchStatus).where(
                    WatchStatus.name == SUMMARY_KEY, WatchStatus.updated_at == row.updated_at,
                ).values(updated_at=now, detail={"day": day}))
                if won != 1:
                    return None
            notice = self._summary_text(session, local)
            session.add(AuditEntry(at=now, actor="shouwang", action="group_summary", target=self.settings.kind,
                                   detail={"day": day, "text": notice.markdown}))
        return notice

    def _summary_text(self, session: Session, local: datetime) -> Notice:
        t = self.text
        start = local.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
        end = start + timedelta(days=1)
        open_count = session.scalar(select(func.count()).select_from(Alarm)
                                    .where(Alarm.state != AlarmState.RESOLVED)) or 0
        offline = session.scalar(select(func.count()).select_from(Device).where(Device.online.is_(False))) or 0
        yesterday = session.execute(select(Alarm.opened_at, Alarm.acknowledged_at).where(
            Alarm.opened_at >= start, Alarm.opened_at < end)).all()
        waits = [(ack - opened).total_seconds() / 60 for opened, ack in yesterday if ack is not None]
        response = t["minutes"].format(m=round(sum(waits) / len(waits))) if waits else t["none"]
        text = t["summary"].format(date=local.date().isoformat(), open=open_count, offline=offline,
                                   yesterday=len(yesterday), response=response, link=self.screen_url)
        return Notice(text.splitlines()[0].lstrip("# "), text)

    def _done(self, notice: Notice, error: str | None) -> None:
        if notice.attempt_id is None:
            if error:
                log.error("the morning summary was not delivered", extra={"error": error})
            return
        now = self.clock()
        with Session(self.engine) as session, session.begin():
            session.execute(update(Attempt).where(Attempt.id == notice.attempt_id).values(
                status="failed" if error else "sent", sent_at=now, ended_at=now, error=error, tries=Attempt.tries + 1))
