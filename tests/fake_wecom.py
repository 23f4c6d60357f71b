"""A local stand-in for a WeCom (企业微信) group robot webhook: ``POST /cgi-bin/webhook/send?key=KEY`` with
a text or markdown message, answered as WeCom does, and holding to the robot's documented limit of 20
messages a minute (``errcode 45009`` past it) on the clock it is given (real time, or the test's)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_http import FakeServer

KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
LIMIT = 20


@dataclass
class FakeWecom(FakeServer):
    clock: Callable[[], float] = time.monotonic
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, Any]:
        return 200, self._handle(handler.path, body)

    @property
    def url(self) -> str:
        return f"http://{self.host}/cgi-bin/webhook/send?key={KEY}"

    def _handle(self, path: str, body: bytes) -> dict[str, Any]:
        url = urlsplit(path)
        if url.path != "/cgi-bin/webhook/send" or parse_qs(url.query).get("key") != [KEY]:
            return self._refuse(93000, "invalid webhook url")
        try:
            message = json.loads(body)
        except ValueError:
            return self._refuse(40000, "invalid json")
        kind = message.get("msgtype")
        content = (message.get(kind) or {}).get("content", "") if kind in ("text", "markdown") else ""
        if not content or len(content.encode()) > (4096 if kind == "markdown" else 2048):
            return self._refuse(40058, "invalid content")
        now = self.clock()
        with self._lock:
            if sum(1 for at, _ in self.received if at > now - 60) >= LIMIT:
                self.refused.append("45009")
                return {"errcode": 45009, "errmsg": "api freq out of limit"}
            self.received.append((now, message))
        return {"errcode": 0, "errmsg": "ok"}

    def _refuse(self, code: int, why: str) -> dict[str, Any]:
        with self._lock:
            self.refused.append(why)
        return {"errcode": code, "errmsg": why}

    def contents(self) -> list[str]:
        with self._lock:
            return [m[m["msgtype"]]["content"] for _, m in self.received]
