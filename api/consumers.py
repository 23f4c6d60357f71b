"""``serve`` with ``mqtt.consumers = N``: N consumer processes on the shared subscription.

One consumer process commits one batch at a time in one interpreter (paho's network loop, conversion
and recording share it), so ``serve`` runs its own consumer and N - 1 child processes, each
``shouwang serve --role ingest`` with the client id ``<client_id>-<n>`` (a persistent session of its own)
on ``$share/<share_group>/...``: the broker splits the stream between them, and every guarantee is a
consumer's own (PUBACK after commit, redelivery recognised, one PostgreSQL).

The parent supervises them: a child that fails (exits non-zero, or is killed) is started again (1 s,
then up to 30 s later), one that stops cleanly (a signal to it) is not;
stopping the parent (SIGTERM, Ctrl+C) stops them with SIGTERM (a consumer says goodbye to the broker; what
it had not committed is redelivered), and a child whose parent is gone (kill -9) stops by itself.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 15.0
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def child_client_id(client_id: str, index: int) -> str:
    return f"{client_id}-{index}"


@dataclass
class _Child:
    index: int
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0  # in a row: a child that ran for a minute starts again after the shortest delay
    next_start: float = 0.0
    started: float = 0.0


@dataclass
class ConsumerProcesses:
    """The ``count`` further consumer processes of one ``serve`` (indexes 1..count)."""

    count: int
    client_id: str
    process: str
    config: str | None = None
    _children: list[_Child] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def commands(self) -> list[list[str]]:
        base = [sys.executable, "-m", "api.cli", *(["--config", self.config] if self.config else []), "serve"]
        return [[*base, "--role", "ingest", "--consumers", "1", "--client-id", child_client_id(self.client_id, i),
                 "--process", f"{self.process}-ingest-{i}", "--parent", str(os.getpid())]
                for i in range(1, self.count + 1)]

    def start(self) -> ConsumerProcesses:
        self._children = [_Child(i, command) for i, command in enumerate(self.commands(), start=1)]
        with self._lock:
            for child in self._children:
                self._spawn(child)
        self._thread = threading.Thread(target=self._supervise, name="consumer-processes", daemon=True)
        self._thread.start()
        return self

    def pids(self) -> list[int]:
        with self._lock:
            return [c.process.pid for c in self._children if c.process is not None and c.process.poll() is None]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            running = [c.process for c in self._children if c.process is not None and c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("consumer process did not stop in time: killed", extra={"pid": process.pid})
                process.kill()
                process.wait()

    def _spawn(self, child: _Child) -> None:
        # the children share the parent's stdout/stderr (one log) and its environment (SHOUWANG_* settings)
        child.process = subprocess.Popen(child.command)
        child.started = time.monotonic()
        log.info("consumer process started", extra={"pid": child.process.pid, "consumer": child.index})

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                if self._stop.is_set():
                    return
                for child in self._children:
                    self._check(child)

    def _check(self, child: _Child) -> None:
        now = time.monotonic()
        if child.process is not None:
            code = child.process.poll()
            if code is None:
                return
            if code == 0:  # it was asked to stop (a signal to it, Ctrl+C in the terminal): not started again
                log.info("consumer process stopped", extra={"consumer": child.index})
                child.process = None
                child.next_start = float("inf")
                return
            if now - child.started > 60:
                child.restarts = 0
            delay = RESTART_DELAYS_S[min(child.restarts, len(RESTART_DELAYS_S) - 1)]
            log.error("consumer process exited: starting it again",
                      extra={"consumer": child.index, "exit_code": code, "in_seconds": delay})
            child.process = None
            child.restarts += 1
            child.next_start = now + delay
            return
        if now >= child.next_start:
            self._spawn(child)


def parent_gone(parent: int) -> bool:
    """A child's test: its parent ``serve`` is no longer there (it was killed without stopping us)."""
    return os.getppid() != parent
