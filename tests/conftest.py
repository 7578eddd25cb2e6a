from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import ServerProcess, init_server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "server"
    init_server(data)
    return data


@pytest.fixture
def server(data_dir: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()
