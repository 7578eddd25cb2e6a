"""The agent home directory: where its files live and the enrollment config."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

# The files of an agent home. Named here, not in the modules that write them, so
# that wipe.py can list them without importing the key store (which calls it).
CONFIG_FILE = "config.json"
VAULT_FILE = "vault.db"
KEYRING_FILE = "keyring.json"
SIGN_KEY_FILE = "device_sign.pem"
BOX_KEY_FILE = "device_box.pem"


def default_home() -> Path:
    env = os.environ.get("FIELDVAULT_HOME")
    return Path(env) if env else Path.home() / ".fieldvault"


def write_all(fd: int, data: bytes) -> None:
    """Every byte, or an error: on a nearly full disk os.write may write only part."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable only by its owner (0600), atomically: a fresh temporary
    file, every byte, fsync, rename. A truncated key file must never replace the good
    one, and the temporary name is never followed: a stale one left by a crash (or a
    symlink planted there) is unlinked, not written through, and the file is then
    created exclusively."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # removes a symlink itself, never its target
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                 | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)


def ensure_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    return home


@dataclass
class AgentConfig:
    server_url: str
    device_id: str
    rep_id: str
    rep_name: str
    server_sign_public_key: str  # pinned at enrollment, base64 raw Ed25519
    insecure: bool = False
    archive_epoch: str = ""

    def save(self, home: Path) -> None:
        write_private(home / CONFIG_FILE, json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def load(cls, home: Path) -> AgentConfig | None:
        """The saved config, None if there is none; ConfigDamaged if it is not one."""
        path = home / CONFIG_FILE
        if not path.exists():
            return None
        try:
            config = cls(**json.loads(path.read_text()))
            texts = [v for k, v in asdict(config).items() if k != "insecure"]
            if not all(isinstance(v, str) for v in texts) or not isinstance(config.insecure, bool):
                raise ValueError("a field is not of its type")
        except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeError too
            reason = str(exc).splitlines()[0] if isinstance(exc, ValueError) else "not a config"
            raise ConfigDamaged(f"{path} is damaged ({reason}): restore it from a backup of "
                                "this laptop, or ask your admin to enroll it again") from None
        return config


class ConfigDamaged(ValueError):
    """config.json exists but is not an agent config (edited, truncated...)."""
