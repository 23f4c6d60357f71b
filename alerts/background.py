"""A daemon thread that runs a loop until it is told to stop: the screen model's listener and the duty
group's robot. ``run`` should return soon after ``stopping`` is set."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Background:
    def __init__(self, name: str, run: Callable[[], None]) -> None:
        self.name, self.run = name, run
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self.thread is None:
            self.thread = threading.Thread(target=self.run, name=self.name, daemon=True)
            self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=timeout)
