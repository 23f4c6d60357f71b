"""Wires one Shouwang process together from settings: database, clock, consumer, rule tick, API.

Used by the CLI (``serve``, ``demo``) and by tests that run a whole process in-process.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session

from alerts import incidents, rules, wording
from alerts.blind import BlindWatch, Watchdog
from alerts.clock import Clock, make_clock
from alerts.db import make_engine
from alerts.escalation import runner as chain
from alerts.escalation.notifiers import make_provider
from alerts.escalation.notifiers.base import Provider
from alerts.escalation.notifiers.console import Script
from alerts.escalation.notifiers.robot import DutyGroup
from alerts.escalation.policy import Pace
from alerts.escalation.targets import ChainSettings
from alerts.metrics import Metrics
from alerts.recording import IngestPolicy
from alerts.scheduler import Watch
from alerts.service import WatchPolicy
from api.app import create_app
from api.deps import AppContext
from api.secret_key import secret_key
from config.settings import Settings
from sensors.consumer import Consumer

log = logging.getLogger(__name__)


def watch_policy(settings: Settings) -> WatchPolicy:
    r = settings.rules
    return WatchPolicy(
        limits=rules.Limits(window=r.inactivity_window, early_warning=r.early_warning),
        device_limits=rules.DeviceLimits(offline_after=r.device_offline_after, offline_grace=r.offline_grace,
                                         low_battery_percent=r.low_battery_percent),
        broker_down_after=r.broker_down_alarm_after, event_retention=r.event_retention, zone=settings.tz,
        language=settings.notify.language,
        incidents=incidents.IncidentLimits(min_homes=r.incident_min_homes, share=r.incident_share,
                                           window=r.incident_window, lookback=r.incident_lookback),
    )


def chain_settings(settings: Settings, secret_key: str = "") -> ChainSettings:
    n = settings.notify
    link_base = settings.api.public_url or n.public_base_url or f"http://{settings.api.host}:{settings.api.port}"
    return ChainSettings(calls_per_hour=n.calls_per_hour, sms_per_hour=n.sms_per_hour,
                               retry_after=n.retry_after, max_tries=n.max_tries, language=n.language,
                               limits=watch_policy(settings).limits, link_secret=secret_key,
                               link_base=link_base.rstrip("/"), link_ttl=timedelta(hours=settings.api.link_hours))


def ingest_policy(settings: Settings) -> IngestPolicy:
    policy = watch_policy(settings)
    return IngestPolicy(limits=policy.limits, device_limits=policy.device_limits,
                        clock_skew=settings.rules.clock_skew, redelivery_window=settings.mqtt.redelivery_window,
                        language=settings.notify.language, zone=settings.tz)


# open connections (a screen's event stream) get this long to end when the server stops
GRACEFUL_SHUTDOWN_S = 3


class _Server(uvicorn.Server):
    """uvicorn's server, except that a SIGINT/SIGTERM is not raised again once the server has stopped:
    uvicorn does that, so Ctrl+C ended in a KeyboardInterrupt traceback and SIGTERM killed the process
    before ``Runtime.stop`` could say goodbye to the broker. Here the caller stops the rest and exits."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        # the bound method: sse-starlette finds the server through it to end open event streams
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
        if self._captured_signals:
            log.info("stopping", extra={"signal": signal.Signals(self._captured_signals[0]).name})


class Runtime:
    def __init__(self, settings: Settings, *, process: str = "main", ingest: bool = True,
                 clock: Clock | None = None, provider: Provider | None = None, script: Script | None = None,
                 robot_clock: Callable[[], float] = time.monotonic,
                 pace_clock: Callable[[], float] = time.monotonic) -> None:
        """``ingest=False`` or ``settings.roles`` without ``ingest``: no consumer; without ``rules``: no
        tick and no escalation run (the API still answers, its health reports the rules processes' ticks)."""
        self.settings = settings
        self.roles = frozenset(settings.roles)
        ingest = ingest and "ingest" in self.roles
        self.engine = make_engine(settings.database.url, echo=settings.database.echo)
        self.clock = clock or make_clock(settings.clock, self.engine)
        self.metrics = Metrics()
        self.policy = watch_policy(settings)
        wording.configure(settings.notify.language, settings.tz)
        self.secret_key = secret_key(self.engine, settings.api.secret_key, process)
        self.chain = chain_settings(settings, self.secret_key)
        self.provider = provider or make_provider(settings.notify, self.clock.now, script)
        # the provider's rate, on real time (``pace_clock``): shared by this process's escalation runs
        self.pace = Pace({"voice": settings.notify.calls_per_second, "sms": settings.notify.sms_per_second},
                         settings.notify.burst, pace_clock)
        robot = settings.notify.robot
        self.duty: DutyGroup | None = DutyGroup(
            self.engine, robot, clock=self.clock.now, zone=settings.tz, language=settings.notify.language,
            screen_url=robot.screen_url or f"{self.chain.link_base}/screen", rate_clock=robot_clock,
        ).start() if robot else None
        self.consumer = Consumer(settings.mqtt, self.engine, self.clock, ingest_policy(settings), settings.tz,
                                 self.metrics) if ingest else None
        self.watch = Watch(self.engine, self.clock, self.policy, self.metrics, settings.rules.tick,
                           process=process, ingest=self.consumer.health if self.consumer else None,
                           escalate=self.escalate)
        self.blind = BlindWatch(
            self.engine, self.clock.now, settings.tz, process=process,
            tick_stale_after=settings.rules.tick_stale_after, ingest_behind_after=settings.rules.ingest_behind_after,
            ingest_lag=self.consumer.lag_seconds if self.consumer else None,
            ingest_name=self.consumer.client_id if self.consumer else "ingest", gauge=self.metrics.blind)
        self.watchdog = Watchdog(settings.watchdog.ping_url, self.blind.blind, settings.watchdog.every,
                                 settings.watchdog.timeout) if settings.watchdog.ping_url else None
        self.app: FastAPI = create_app(AppContext(
            settings=settings, engine=self.engine, clock=self.clock, policy=self.policy, metrics=self.metrics,
            provider=self.provider, chain=self.chain, secret_key=self.secret_key,
            ingest_status=self.consumer.status if self.consumer else None,
            last_tick=(lambda: (self.watch.last_tick_real, self.watch.last_tick_at)) if "rules" in self.roles else None,
            blind=self.blind.state,
        ))
        self._server: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None

    def escalate(self, now: datetime) -> chain.RunResult:
        result = chain.run(self.engine, now, self.provider, self.chain, self.pace)
        if self.duty is not None:
            self.duty.run(now)  # only queues: the robot's own thread posts, rate-limited
        return result

    def seed(self) -> None:
        """Insert the default escalation policies the database does not have yet."""
        with Session(self.engine) as session, session.begin():
            chain.seed_policies(session, chain.load_policy_file(self.settings.notify.policies_file), self.clock.now())

    def start(self) -> None:
        self.seed()
        if self.consumer is not None:
            self.consumer.start()
        if "rules" in self.roles:
            self.watch.start()
        self.blind.start()
        if self.watchdog is not None:
            self.watchdog.start()

    def serve_http(self, host: str, port: int, background: bool = False) -> None:
        config = uvicorn.Config(self.app, host=host, port=port, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
        self._server = _Server(config)
        if background:
            self._http_thread = threading.Thread(target=self._server.run, name="http", daemon=True)
            self._http_thread.start()
        else:
            self._server.run()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._http_thread is not None:
                self._http_thread.join(timeout=5)
        if self.watchdog is not None:
            self.watchdog.stop()
        self.blind.stop()
        self.watch.stop()
        if self.duty is not None:
            self.duty.stop()
        if self.app.state.context.screens is not None:
            self.app.state.context.screens.stop()
        if self.consumer is not None:
            self.consumer.stop()
        self.engine.dispose()

    def tick_every(self) -> timedelta:
        return self.settings.rules.tick
