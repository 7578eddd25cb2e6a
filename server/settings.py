"""Server settings, in one place (environment variables prefixed FIELDVAULT_)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from schema.signing import MAX_CLOCK_SKEW_S
from schema.validation import MAX_BODY_BYTES, PULL_PAGE_MAX


def default_data_dir() -> Path:
    return Path(os.environ.get("FIELDVAULT_DATA") or "./fieldvault-data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIELDVAULT_", extra="ignore")

    data: Path = Path("./fieldvault-data")
    host: str = "127.0.0.1"
    port: int = 8700
    max_body_bytes: int = MAX_BODY_BYTES
    pull_page_max: int = PULL_PAGE_MAX
    clock_skew_s: int = MAX_CLOCK_SKEW_S
    revocation_check_s: float = 15
    hr_inbox: Path | None = None
