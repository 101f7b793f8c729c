"""Prometheus metrics: one registry per bot, exported at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tasks_by_state = Gauge("kontext_tasks", "Open tasks by state", ["state"], registry=r)
        self.task_outcomes = Counter(
            "kontext_task_outcomes", "Finished tasks by outcome", ["outcome"], registry=r
        )
        self.task_duration = Histogram(
            "kontext_task_duration_seconds",
            "From the command to the posted image (or the failure)",
            buckets=(2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200),
            registry=r,
        )
        self.delivery_latency = Histogram(
            "kontext_delivery_seconds",
            "From KIE's finished record to the image posted on Discord",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.queue_depth = Gauge("kontext_queue_depth", "Tasks waiting for their turn", registry=r)
        self.held_for_answers = Gauge(
            "kontext_work_held_for_answers",
            "Work after a first answer (ledger writes, status edits) waiting for other "
            "interactions' first answers",
            registry=r,
        )
        self.kie_calls = Counter(
            "kontext_kie_calls",
            "KIE HTTP calls by endpoint and code",
            ["endpoint", "code"],
            registry=r,
        )
        self.discord_errors = Counter(
            "kontext_discord_api_errors", "Discord API errors by code", ["code"], registry=r
        )
        self.kie_credits = Gauge("kontext_kie_credits", "KIE credit balance last read", registry=r)
        self.refusals = Counter(
            "kontext_refusals",
            "Requests refused before any KIE call, by reason",
            ["reason"],
            registry=r,
        )
        self.kie_orphaned_creates = Counter(
            "kontext_kie_orphaned_creates",
            "Generate calls that got no usable answer: KIE may have created (and charged) a task "
            "the bot cannot follow",
            registry=r,
        )
        self.loop_lag = Gauge(
            "kontext_event_loop_lag_seconds", "Event-loop lag, last sample", registry=r
        )
        self.reference_images, self.reference_bytes = _reference_gauges(r)
        self.shard_connected, self.shard_latency = _shard_gauges(r)
        self.background_restarts = Counter(
            "kontext_background_restarts",
            "Restarts of a background task after it failed",
            ["task"],
            registry=r,
        )

    def kie_observer(self, endpoint: str, outcome: str) -> None:
        self.kie_calls.labels(endpoint=endpoint, code=outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _reference_gauges(r: CollectorRegistry) -> tuple[Gauge, Gauge]:
    """Saved reference images (/ref) in all servers: how many, and their bytes in the ledger."""
    images = Gauge(
        "kontext_reference_images", "Saved reference images (/ref), all servers", registry=r
    )
    stored = Gauge(
        "kontext_reference_bytes",
        "Bytes the saved reference images take in the ledger, all servers",
        registry=r,
    )
    return images, stored


def _shard_gauges(r: CollectorRegistry) -> tuple[Gauge, Gauge]:
    """Per gateway shard of this process: connected (1/0) and the heartbeat latency."""
    connected = Gauge(
        "kontext_discord_shard_connected",
        "1 while this process's gateway shard holds a live session, else 0",
        ["shard"],
        registry=r,
    )
    latency = Gauge(
        "kontext_discord_shard_latency_seconds",
        "The shard's last gateway heartbeat round trip",
        ["shard"],
        registry=r,
    )
    return connected, latency
