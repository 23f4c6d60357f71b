"""The one settings object of Shouwang.

Read, in increasing priority, from the defaults below, a TOML file (``--config`` on the command line or
``SHOUWANG_CONFIG``), and ``SHOUWANG_*`` environment variables (nested groups with ``__``, e.g.
``SHOUWANG_MQTT__URL``). A secret may come from a file named by ``<VAR>_FILE``.
Nothing is created at import time: call :func:`load_settings`.

Durations accept seconds (``3600``) or a number with a unit: ``50ms``, ``90s``, ``10m``, ``14h``, ``90d``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlparse, urlunparse

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|[smhd]?)\s*$")


class SettingsError(Exception):
    """A setting is wrong; the message (English) says which and how to fix it. ``code`` and ``params`` name
    the same message for :mod:`alerts.refusals` (the ``shouwang`` command words it in ``notify.language``);
    ``problems`` are the invalid settings, each ``{"where", "env", "type", "msg", "ctx"}`` (and ``code`` and
    ``params`` when the validator's error names them, as :class:`DurationError` does)."""

    def __init__(self, message: str, code: str = "settings_text", problems: list[dict[str, Any]] | None = None,
                 **params: Any) -> None:
        super().__init__(message)
        self.code, self.params, self.problems = code, params, problems or []


def parse_duration(value: Any) -> timedelta:
    """Turn ``3600``, ``"90s"``, ``"10m"``, ``"14h"``, ``"90d"`` or a timedelta into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])
    raise DurationError(value)


class DurationError(ValueError):
    """A value that is not a duration; ``code`` and ``params`` name its message for :mod:`alerts.refusals`."""

    code = "duration"

    def __init__(self, value: Any) -> None:
        super().__init__(f"{value!r} is not a duration: write seconds (3600) or e.g. '90s', '10m', '14h', '90d'")
        self.params = {"value": value}


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = "sqlite:///data/shouwang.db"
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _known_dialect(cls, url: str) -> str:
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        if not (url.startswith("sqlite") or url.startswith("postgresql+psycopg://")):
            raise ValueError(
                "database url must be sqlite:///path/to/file.db or postgresql://user@host:port/dbname"
            )
        return url


class FormatRoute(BaseModel):
    model_config = ConfigDict(extra="forbid")

    """Which adapter parses messages on topics matching ``topic`` (an MQTT filter, + and # allowed), with
    the options of that adapter (docs/formats.md describes each format and its options)."""

    topic: str
    format: Literal[
        "native", "zigbee2mqtt", "tasmota", "shelly_gen1", "shelly_gen2", "esphome", "homeassistant", "homie"
    ]
    # Zigbee2MQTT only: the bridge's cache_state setting (SPEC section 2). With the default (true) only a
    # change from not occupied counts as an observation.
    cache_state: bool = True
    # Tasmota, Shelly (inputs), ESPHome, Home Assistant, Homie: what the sensor's two states report.
    device_kind: Literal["motion", "door", "button"] = "motion"
    # Door sensors: which state means closed ("on": ON/true/1, "off": OFF/false/0). Default: "off" for
    # ESPHome and Home Assistant (their binary_sensor device class door: on = open); Tasmota, Shelly Gen1
    # inputs, Shelly Gen2 inputs and Homie have no convention and need it set.
    closed_when: Literal["on", "off"] | None = None
    # Which sensor of a device is the activity sensor: Tasmota SENSOR/RESULT key (default "Switch1"),
    # Shelly Gen1 input level topic (e.g. "input/0"; default none), ESPHome binary_sensor object id and Homie
    # "<node>/<property>" (default: every binary sensor / boolean property).
    sensor: str | None = None
    # State topics (Tasmota SENSOR, Shelly Gen1, ESPHome, Home Assistant, Homie) repeat their state, so
    # "on" counts only as a change from "off"; true makes every "on" an observation (sensors that never
    # send "off", like Home Assistant's own force_update / off_delay setups).
    force_update: bool = False
    # Home Assistant (and Tasmota StateText): the exact payloads of the states and of availability.
    payload_on: str = "ON"
    payload_off: str = "OFF"
    payload_available: str = "online"
    payload_not_available: str = "offline"
    # ESPHome and Homie: every message of a node / device is the one Shouwang device (one sensor per node).
    node_is_device: bool = False

    @model_validator(mode="after")
    def _options_make_sense(self) -> FormatRoute:
        payloads = [self.payload_on, self.payload_off, self.payload_available, self.payload_not_available]
        if len(set(payloads)) != len(payloads) or not all(payloads):
            raise ValueError("payload_on, payload_off, payload_available and payload_not_available must be "
                             "four different, non-empty payloads")
        needs_closed_when = ("tasmota", "shelly_gen1", "shelly_gen2", "homie")
        if (self.device_kind == "door" and self.closed_when is None and self.format in needs_closed_when
                and not (self.format == "shelly_gen1" and self.sensor is None)):
            raise ValueError(f"a {self.format} door route must say which state means the door is closed: "
                             "closed_when = 'on' or 'off' (it depends on the contact and its wiring)")
        return self


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # credentials may be given in the url (mqtt://user:password@host:port): they are moved to
    # username/password and the url keeps only scheme, host and port, so it can be shown and logged
    url: str = "mqtt://127.0.0.1:1883"
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str = "shouwang-ingest"
    username: str | None = None
    password: str | None = Field(None, repr=False)  # never shown: not in repr, /healthz or logs
    # $share/<group>/... so several processes split the stream; empty for brokers without shared subs.
    share_group: str = "shouwang"
    keepalive: int = Field(30, ge=5, le=3600)
    session_expiry: Duration = timedelta(days=7)
    # How many unacknowledged messages we let the broker send (MQTT 5 Receive Maximum). Batching needs
    # room: the broker's own max_inflight_messages must be at least this (see docs/deployment.md).
    receive_maximum: int = Field(2000, ge=1, le=65535)
    batch_size: int = Field(1000, ge=1, le=50000)
    batch_wait: Duration = timedelta(milliseconds=50)
    # writer threads, each with its own database connection; a device's messages always go to the same one.
    # One is fastest on a loaded host with the database nearby (the consumer's Python is the limit there);
    # more overlap the round trips of a distant database.
    db_workers: int = Field(1, ge=1, le=16)
    # consumer processes `serve` runs on the shared subscription (its own and consumers - 1 children, each
    # with the client id `<client_id>-<n>`): one process's Python is the limit of one consumer
    consumers: int = Field(1, ge=1, le=16)
    max_payload_bytes: int = Field(16384, ge=256)
    redelivery_window: Duration = timedelta(days=1)
    routes: list[FormatRoute] = Field(
        default_factory=lambda: [
            FormatRoute(topic="shouwang/v1/events/#", format="native"),
            FormatRoute(topic="zigbee2mqtt/#", format="zigbee2mqtt"),
        ]
    )

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, url: str) -> str:
        parsed = urlparse(url)
        if parsed.scheme not in ("mqtt", "tcp") or not parsed.hostname:
            raise ValueError("mqtt url must look like mqtt://host:port, e.g. mqtt://127.0.0.1:1883")
        return url

    @model_validator(mode="after")
    def _consumers_share(self) -> MqttSettings:
        if self.consumers > 1 and not self.share_group:
            raise ValueError("mqtt.consumers > 1 needs mqtt.share_group: the consumers split the stream through "
                             "the shared subscription $share/<share_group>/...")
        return self

    @model_validator(mode="after")
    def _credentials_from_url(self) -> MqttSettings:
        parsed = urlparse(self.url)
        if parsed.username is None and parsed.password is None:
            return self
        user = unquote(parsed.username or "") or None
        if self.username and user and self.username != user:
            raise ValueError("mqtt.url and mqtt.username name different users: give the user in one place")
        if self.password and parsed.password is not None:
            raise ValueError("mqtt.url and mqtt.password both give a password: give it in one place")
        self.username = self.username or user
        self.password = self.password or (unquote(parsed.password) if parsed.password is not None else None)
        host = parsed.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parsed.port is not None:
            netloc += f":{parsed.port}"
        self.url = urlunparse(parsed._replace(netloc=netloc))
        return self

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlparse(self.url).port or 1883


class ClockSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    """``system`` in production; ``fast`` runs simulated time from ``start`` at ``speed`` times real time
    (every process with the same two values reads the same time); ``manual`` reads the time stored in
    the database, moved by ``shouwang clock`` or a test."""

    mode: Literal["system", "fast", "manual"] = "system"
    start: datetime | None = None
    speed: float = Field(600.0, gt=0)

    @model_validator(mode="after")
    def _fast_needs_start(self) -> ClockSettings:
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("clock.start needs a time zone, e.g. 2026-11-23T08:00:00+08:00")
        if self.mode == "fast" and self.start is None:
            raise ValueError("clock.mode = 'fast' needs clock.start (an ISO time with zone) and clock.speed")
        return self


class RuleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inactivity_window: Duration = timedelta(hours=14)
    early_warning: Duration = timedelta(hours=10)
    device_offline_after: Duration = timedelta(hours=2)
    offline_grace: Duration = timedelta(minutes=10)
    clock_skew: Duration = timedelta(minutes=5)
    low_battery_percent: int = Field(15, ge=1, le=99)
    event_retention: Duration = timedelta(days=90)
    broker_down_alarm_after: Duration = timedelta(seconds=60)
    tick: Duration = timedelta(seconds=1)
    # a correlated silence: at least this many homes and this share of a group's reporting homes, last heard
    # within one window of each other and silent since at least that long, is one infrastructure incident
    incident_min_homes: int = Field(3, ge=1)
    incident_share: float = Field(0.5, gt=0, le=1)
    incident_window: Duration = timedelta(minutes=10)
    incident_lookback: Duration = timedelta(hours=2)  # a home heard within this was "reporting"
    ingest_behind_after: Duration = timedelta(seconds=60)  # ingest this far behind is a blind state
    tick_stale_after: Duration = timedelta(seconds=30)  # no tick anywhere this long (real time) is blind

    @model_validator(mode="after")
    def _warning_before_alarm(self) -> RuleSettings:
        if self.early_warning >= self.inactivity_window:
            raise ValueError("rules.early_warning must be shorter than rules.inactivity_window")
        if self.tick <= timedelta(0):
            raise ValueError("rules.tick must be positive")
        return self


class ProviderTemplate(BaseModel):
    """One of our templates as registered at a domestic provider: its code there (Aliyun ``SMS_...`` /
    ``TTS_...``, Tencent's numeric template id) and the ordered names of our parameters it takes."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1)
    params: list[str] = Field(default_factory=list)


class AliyunSettings(BaseModel):
    """Alibaba Cloud SMS (dysmsapi) and voice (dyvmsapi, the IVR call). docs/escalation.md says what to
    register and which push URLs to configure."""

    model_config = ConfigDict(extra="forbid")

    access_key_id: str = Field(min_length=1)
    access_key_secret: str = Field(min_length=1)
    sign_name: str | None = None  # the approved SMS signature, e.g. 守望社区
    show_number: str | None = None  # the purchased number voice calls come from (CalledShowNumber)
    sms_endpoint: str = "dysmsapi.aliyuncs.com"
    voice_endpoint: str = "dyvmsapi.aliyuncs.com"
    protocol: Literal["https", "http"] = "https"  # http only for a local test double
    param_max_length: int = Field(35, ge=1, le=500)  # a template variable's limit (characters)
    play_times: int = Field(2, ge=1, le=3)
    key_timeout: int = Field(8, ge=1, le=60)  # seconds the IVR call waits for the key
    timeout: Duration = timedelta(seconds=10)
    templates: dict[str, ProviderTemplate] = Field(default_factory=dict)


class TencentSettings(BaseModel):
    """Tencent Cloud SMS (sms 2021-01-11 SendSms)."""

    model_config = ConfigDict(extra="forbid")

    secret_id: str = Field(min_length=1)
    secret_key: str = Field(min_length=1)
    sdk_app_id: str = Field(min_length=1)  # SmsSdkAppId, e.g. 1400000000
    sign_name: str = Field(min_length=1)
    region: str = "ap-guangzhou"
    endpoint: str = "sms.tencentcloudapi.com"
    protocol: Literal["https", "http"] = "https"  # http only for a local test double
    param_max_length: int = Field(12, ge=1, le=500)  # a template variable's limit (characters)
    timeout: Duration = timedelta(seconds=10)
    templates: dict[str, ProviderTemplate] = Field(default_factory=dict)


class RobotSettings(BaseModel):
    """The duty group's robot: a WeCom (企业微信) or DingTalk group robot webhook."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["wecom", "dingtalk"] = "wecom"
    webhook_url: str = Field(min_length=1)  # https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...
    secret: str | None = None  # DingTalk's signing secret (加签), if the robot has one
    per_minute: int = Field(20, ge=1, le=60)  # the robot's documented limit: 20 messages a minute
    # alarm kinds the group hears of (empty: every kind except the maintenance notices)
    kinds: list[str] = Field(default_factory=list)
    screen_url: str | None = None  # the link in each notice; default: api.public_url + /screen
    summary_at: str | None = "08:00"  # local time of the morning summary; none: no summary
    timeout: Duration = timedelta(seconds=5)

    @field_validator("summary_at")
    @classmethod
    def _hh_mm(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("robot.summary_at must be a 24 h local time such as 08:00")
        return value


class NotifySettings(BaseModel):
    """Calls and SMS. Without credentials the console provider logs them instead (the demo). A deployment
    picks one provider per channel: voice twilio|aliyun|console, SMS twilio|aliyun|tencent|console."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["auto", "console", "twilio"] = "auto"  # auto: twilio when its credentials are set
    voice: Literal["auto", "twilio", "aliyun", "console"] = "auto"  # auto: as ``provider`` says
    sms: Literal["auto", "twilio", "aliyun", "tencent", "console"] = "auto"
    language: Literal["zh", "en"] = "zh"
    calls_per_hour: int = Field(6, ge=1, le=100)  # per person: a capped person is skipped, the chain goes on
    sms_per_hour: int = Field(6, ge=1, le=100)
    # the provider account's rate, attempts placed per second (None: no limit): a mass silence opens more
    # chains at once than a provider takes; the chain places them at this rate, panic alarms first.
    # Twilio's defaults: 1 call a second per account (raised on request), 1 SMS a second per long number
    calls_per_second: float | None = Field(1.0, gt=0, le=1000)
    sms_per_second: float | None = Field(1.0, gt=0, le=1000)
    burst: int = Field(30, ge=1, le=10_000)  # attempts of one channel that may go at once after a quiet spell
    retry_after: Duration = timedelta(seconds=30)  # a call not handed to the provider by then is retried
    max_tries: int = Field(5, ge=1, le=50)
    policies_file: str | None = None  # default: config/escalation.toml shipped with Shouwang
    public_base_url: str | None = None  # where the provider reaches our webhooks, e.g. https://sw.example.org
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None  # the Twilio number calls and SMS come from, E.164
    twilio_api_base: str | None = None  # another host speaking Twilio's REST API (a test double, a proxy)
    twilio_voice: str | None = None  # default Polly.Zhiyu (zh) / Polly.Joanna (en)
    aliyun: AliyunSettings | None = None
    tencent: TencentSettings | None = None
    # the secret part of the push URLs configured at Aliyun and Tencent (/webhooks/<provider>/<token>/<kind>)
    webhook_token: str | None = None
    webhook_allow: list[str] = Field(default_factory=list)  # source networks allowed to push (CIDR); empty: any
    robot: RobotSettings | None = None

    def _twilio_credentials(self) -> bool:
        return self.provider == "twilio" or bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def voice_provider(self) -> str:
        if self.voice != "auto":
            return self.voice
        return "console" if self.provider == "console" or not self._twilio_credentials() else "twilio"

    @property
    def sms_provider(self) -> str:
        if self.sms != "auto":
            return self.sms
        return "console" if self.provider == "console" or not self._twilio_credentials() else "twilio"

    @property
    def use_twilio(self) -> bool:
        return "twilio" in (self.voice_provider, self.sms_provider)

    @model_validator(mode="after")
    def _providers_complete(self) -> NotifySettings:
        if self.use_twilio:
            missing = [name for name in ("twilio_account_sid", "twilio_auth_token", "twilio_from", "public_base_url")
                       if not getattr(self, name)]
            if missing:
                raise ValueError("Twilio needs notify." + ", notify.".join(missing)
                                 + " (or notify.provider = 'console' to log calls instead)")
        chosen = {self.voice_provider, self.sms_provider}
        if "aliyun" in chosen and self.aliyun is None:
            raise ValueError("notify.voice or notify.sms = 'aliyun' needs a [notify.aliyun] group "
                             "(access_key_id, access_key_secret, templates)")
        if self.aliyun is not None and self.sms_provider == "aliyun" and not self.aliyun.sign_name:
            raise ValueError("Aliyun SMS needs notify.aliyun.sign_name (the approved signature)")
        if self.aliyun is not None and self.voice_provider == "aliyun" and not self.aliyun.show_number:
            raise ValueError("Aliyun voice needs notify.aliyun.show_number (the purchased number calls come from)")
        if self.sms_provider == "tencent" and self.tencent is None:
            raise ValueError("notify.sms = 'tencent' needs a [notify.tencent] group "
                             "(secret_id, secret_key, sdk_app_id, sign_name, templates)")
        if chosen & {"aliyun", "tencent"} and (not self.webhook_token or len(self.webhook_token) < 16):
            raise ValueError("Aliyun and Tencent push receipts and replies without a signature: set "
                             "notify.webhook_token (a random secret of at least 16 characters; it goes into the "
                             "push URLs configured at the provider)")
        for network in self.webhook_allow:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"notify.webhook_allow: {network!r} is not an address or network") from exc
        return self


class MapSettings(BaseModel):
    """The screen's base map: a tile URL template with its datum, an offline image of the neighbourhood
    with its corner coordinates (WGS-84), or none (markers on a plain background)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["none", "tiles", "image"] = "none"
    tile_url: str | None = None  # e.g. http://tiles.local/{z}/{x}/{y}.png
    tile_datum: Literal["wgs84", "gcj02"] = "wgs84"  # Amap tiles are GCJ-02: markers are shifted onto them
    tile_attribution: str = ""
    image_url: str | None = None  # served by you, e.g. /static/site/neighbourhood.png
    image_south_west: tuple[float, float] | None = None  # (latitude, longitude)
    image_north_east: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _complete(self) -> MapSettings:
        if self.kind == "tiles" and not self.tile_url:
            raise ValueError("map.kind = 'tiles' needs map.tile_url")
        if self.kind == "image" and not (self.image_url and self.image_south_west and self.image_north_east):
            raise ValueError("map.kind = 'image' needs map.image_url, map.image_south_west, map.image_north_east")
        return self


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # signs the links in escalation SMS; set it (SHOUWANG_API__SECRET_KEY_FILE) so links survive restarts
    secret_key: str | None = None
    public_url: str | None = None  # how phones reach the /m/ page, for the SMS link; default notify.public_base_url
    session_hours: float = Field(12, gt=0)
    screen_token_days: float = Field(365, gt=0)
    link_hours: float = Field(24, gt=0)
    language: Literal["zh", "en"] = "zh"  # labels of the screen and the phone page
    map: MapSettings = Field(default_factory=MapSettings)

    @field_validator("secret_key")
    @classmethod
    def _real_secret(cls, value: str | None) -> str | None:
        if value is not None and (len(value) < 16 or value.lower() in ("changeme", "secret", "change-me-please")):
            raise ValueError("api.secret_key must be a real secret of at least 16 characters")
        return value


class WatchdogSettings(BaseModel):
    """A dead man's switch outside Shouwang (healthchecks.io or a self-hosted twin): a GET to ``ping_url``
    every ``every`` while the watch sees, to ``<ping_url>/fail`` while it is blind. Silence there means
    this whole machine is gone, which nothing on it can report."""

    model_config = ConfigDict(extra="forbid")

    ping_url: str | None = None
    every: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=10)
Role = Literal["ingest", "rules", "api"]
ROLES: tuple[Role, ...] = ("ingest", "rules", "api")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="forbid", validate_default=True
    )

    timezone: str = "Asia/Shanghai"
    log_format: Literal["json", "text"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    clock: ClockSettings = Field(default_factory=ClockSettings)
    rules: RuleSettings = Field(default_factory=RuleSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    watchdog: WatchdogSettings = Field(default_factory=WatchdogSettings)
    # what this process runs: ingest (the MQTT consumer), rules (the tick and escalation), api (HTTP and
    # the live screens); all three by default. A city splits them over processes (docs/deployment.md).
    roles: list[Role] = Field(default_factory=lambda: list(ROLES), min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai") from exc
        return name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges file and environment itself (with *_FILE secrets) and passes the result
        return (init_settings,)


def environment_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """``SHOUWANG_A__B=v`` -> ``{"a": {"b": "v"}}``; ``SHOUWANG_A__B_FILE=/path`` reads v from the file.
    A value that looks like JSON (``[...]`` or ``{...}``) is decoded, for lists such as mqtt.routes."""
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith("SHOUWANG_") or key == "SHOUWANG_CONFIG":
            continue
        name = key.removeprefix("SHOUWANG_")
        value: Any = raw
        if name.endswith("_FILE"):
            name = name.removesuffix("_FILE")
            try:
                value = Path(raw).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SettingsError(f"{key} names {raw!r}, which cannot be read: {exc}", "settings_env_file",
                                    key=key, file=raw, why=str(exc)) from exc
        elif raw.strip()[:1] in ("[", "{"):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise SettingsError(f"{key} looks like JSON but is not valid: {exc}", "settings_env_json", key=key,
                                    why=str(exc)) from exc
        path = [part.lower() for part in name.split("__")]
        target = values
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise SettingsError(f"{key} conflicts with another SHOUWANG_ variable", "settings_env_conflict",
                                    key=key)
        target[path[-1]] = value
    return values


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from defaults < TOML file < environment < ``overrides``, or raise
    :class:`SettingsError` with a message saying what to fix."""
    path = config_file or os.environ.get("SHOUWANG_CONFIG")
    values: dict[str, Any] = {}
    if path:
        try:
            values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"config file {path!r} cannot be read: {exc}", "settings_missing"
                                if isinstance(exc, FileNotFoundError) else "settings_unreadable", path=str(path),
                                why=str(exc)) from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path!r} is not valid TOML: {exc}", "settings_not_toml", path=str(path),
                                why=str(exc)) from exc
    values = _merge(_merge(values, environment_values(os.environ)), overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = _problems(exc)
        raise SettingsError(_explain(problems, path), "settings_invalid_in" if path else "settings_invalid",
                            problems, path=str(path or "")) from exc


def _problems(exc: ValidationError) -> list[dict[str, Any]]:
    """Each invalid setting: where (``rules.inactivity_window``), its variable, pydantic's type, message, ctx."""
    problems = []
    for error in exc.errors():
        ctx = error.get("ctx") or {}
        problem = {"where": ".".join(str(p) for p in error["loc"]) or "(top level)",
                   "env": "SHOUWANG_" + "__".join(str(p).upper() for p in error["loc"]),
                   "type": error["type"], "msg": error["msg"].removeprefix("Value error, "),
                   "ctx": {k: v if isinstance(v, int | float | str) else str(v) for k, v in ctx.items()}}
        cause = ctx.get("error")
        if isinstance(cause, DurationError):
            problem.update(code=cause.code, params=cause.params)
        problems.append(problem)
    return problems


def _explain(problems: list[dict[str, Any]], path: str | Path | None) -> str:
    lines = [f"invalid settings{f' in {path}' if path else ''}:"]
    for problem in problems:
        message = "unknown setting (a typo?)" if problem["type"] == "extra_forbidden" else problem["msg"]
        lines.append(f"  {problem['where']} (env {problem['env']}): {message}")
    return "\n".join(lines)


def utcnow() -> datetime:
    """The machine's time in UTC; only the system clock may call it."""
    return datetime.now(UTC)
