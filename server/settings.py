"""Server settings, in one place (environment variables prefixed FIELDVAULT_)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from schema.signing import MAX_CLOCK_SKEW_S
from schema.validation import MAX_BODY_BYTES, PULL_PAGE_MAX


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIELDVAULT_", extra="ignore")

    data: Path = Path("./fieldvault-data")
    host: str = "127.0.0.1"
    port: int = 8700
    max_body_bytes: int = MAX_BODY_BYTES
    pull_page_max: int = PULL_PAGE_MAX
    clock_skew_s: int = MAX_CLOCK_SKEW_S
    revocation_check_s: float = 15
    # How long a push batch waits for the device's batch before it (rules/push_turns.py).
    push_turn_wait_s: float = 30
    # The applier of stored push batches (server/applier.py): how long arrivals must
    # pause before it applies, and how long the oldest may wait whatever arrives.
    apply_quiet_s: float = 0.5
    apply_max_wait_s: float = 60
    hr_inbox: Path | None = None
    # How long a captured transaction may wait for the replica before health says so
    # (Litestream syncs every second and backs off on errors: a minute is far beyond
    # normal), and how long a replication probe's answer is reused.
    replica_max_lag_s: float = 60
    replica_probe_ttl_s: float = 10
    # sqlite:///PATH or postgresql://USER@HOST:PORT/DB; None: archive.db in `data`.
    archive_url: str | None = None

    def as_environment(self) -> dict[str, str]:
        """These settings as FIELDVAULT_* variables, for worker processes that build
        their own app from the environment."""
        return {f"FIELDVAULT_{name.upper()}": str(value)
                for name, value in self.model_dump().items() if value is not None}
