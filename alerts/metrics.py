"""Prometheus metrics of one process, on a registry of its own (no globals: tests build their own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_in = Counter("shouwang_events_in_total", "Events stored, by kind", ["kind"],
                                 registry=self.registry)
        self.messages = Counter("shouwang_mqtt_messages_total", "MQTT messages received", registry=self.registry)
        self.duplicates = Counter("shouwang_duplicates_total", "Redeliveries and repeated event ids dropped",
                                  registry=self.registry)
        self.skipped = Counter("shouwang_messages_skipped_total", "Messages deliberately not observations",
                               ["reason"], registry=self.registry)
        self.quarantined = Counter("shouwang_quarantined_total", "Messages quarantined, by reason", ["reason"],
                                   registry=self.registry)
        self.quarantine_dropped = Counter(
            "shouwang_quarantine_dropped_total", "Quarantined messages over the quarantine's caps: counted per hour "
            "and source in quarantine_overflow, not kept", registry=self.registry)
        self.clock_skew = Counter("shouwang_clock_skew_total", "Device timestamps replaced by receive time",
                                  registry=self.registry)
        self.batch_commit = Histogram("shouwang_batch_commit_seconds", "Time to commit one ingest batch",
                                      buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                                      registry=self.registry)
        self.batch_errors = Counter("shouwang_batch_errors_total", "Ingest batches that failed to commit",
                                    registry=self.registry)
        self.alarms_raised = Counter("shouwang_alarms_raised_total", "Alarms raised by this process, by kind",
                                     ["kind"], registry=self.registry)
        self.alarms_open = Gauge("shouwang_alarms_open", "Open alarms, by kind", ["kind"], registry=self.registry)
        self.ingest_queue = Gauge("shouwang_ingest_queue", "Messages received and not yet committed",
                                  registry=self.registry)
        self.ingest_lag = Gauge("shouwang_ingest_lag_seconds", "Age of the oldest uncommitted message",
                                registry=self.registry)
        self.broker_connected = Gauge("shouwang_broker_connected", "1 while the consumer is connected",
                                      registry=self.registry)
        self.tick_seconds = Histogram("shouwang_tick_seconds", "Duration of one rule tick", registry=self.registry)
