"""Prometheus counters for sync and replication, exposed at /metrics."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, multiprocess

# Set by `serve --workers N` (N > 1) before the workers start: each worker writes its
# counters there, and whichever worker answers /metrics reports the sum of all.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

PUSH_OPS = Counter("fieldvault_push_ops_total", "Operations answered by push, by result",
                   ["status"])
RECEIVED_OPS = Gauge("fieldvault_push_received_ops",
                     "Pushed operations stored, their rules not applied yet",
                     multiprocess_mode="mostrecent")
RECEIVED_APPLIED = Counter("fieldvault_push_received_applied_total",
                           "Stored pushed operations applied after their answer")
PULL_REQUESTS = Counter("fieldvault_pull_requests_total", "Pull requests served")
PULL_CHANGES = Counter("fieldvault_pull_changes_total", "Changes sent by pull, by kind", ["kind"])
AUTH_FAILURES = Counter("fieldvault_auth_failures_total", "Refused requests, by error code",
                        ["code"])
RECONCILES = Counter("fieldvault_reconcile_requests_total", "Epoch reconcile requests")
REPLICA_TXID = Gauge("fieldvault_replica_txid", "Latest transaction in the replica",
                   multiprocess_mode="mostrecent")
REPLICA_LAG_TXNS = Gauge("fieldvault_replica_lag_txns",
                         "Transactions captured locally but not yet in the replica",
                   multiprocess_mode="mostrecent")
REPLICA_HEALTHY = Gauge("fieldvault_replica_healthy", "1 when replication is healthy",
                   multiprocess_mode="mostrecent")
REPLICA_LAG_SECONDS = Gauge("fieldvault_replica_lag_seconds",
                           "How long the oldest transaction not yet in the replica has waited",
                   multiprocess_mode="mostrecent")
REPLICA_AGE = Gauge("fieldvault_replica_seconds_since_replicated",
                    "Seconds since the replica last received a transaction",
                   multiprocess_mode="mostrecent")


class ReplicationProbe:
    """Replication status, cached: reading the replica costs a Litestream call."""

    def __init__(self, data: Path, ttl_s: float, max_lag_s: float) -> None:
        self.data = data
        self.ttl_s = ttl_s
        self.max_lag_s = max_lag_s
        self._at = 0.0
        self._status: dict[str, Any] = {}

    def status(self) -> dict[str, Any]:
        from .replication import backup_status

        if time.monotonic() - self._at > self.ttl_s:
            self._status = backup_status(self.data, max_lag=self.max_lag_s)
            self._at = time.monotonic()
            REPLICA_HEALTHY.set(1 if self._status.get("healthy") else 0)
            REPLICA_TXID.set(self._status.get("txid", 0))
            REPLICA_LAG_TXNS.set(self._status.get("lag_txns", 0))
            REPLICA_LAG_SECONDS.set(self._status.get("lag_seconds", 0))
            REPLICA_AGE.set(self._status.get("seconds_since_replicated", 0))
        return self._status


class StaticReplication:
    """For an archive Litestream does not replicate (PostgreSQL): its backups are the
    database's own (docs/OPERATIONS.md), so health reports no replica and no error."""

    def __init__(self, backend: str) -> None:
        self._status: dict[str, Any] = {
            "healthy": True, "errors": [], "replica": None, "backend": backend,
            "note": "backed up with the database's own tools, not Litestream"}

    def status(self) -> dict[str, Any]:
        return self._status


def exposition() -> bytes:
    """The metrics text for /metrics: this process's, or every worker's when several
    workers share a metrics folder."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
