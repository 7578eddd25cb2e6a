"""A seeded, faulty HTTP/1.1 proxy on 127.0.0.1 for the sync proofs.

It sits between agents and a real server and, for each request, picks one
fault (or none) from a seeded random generator:

- reset_after_request: the request reaches the server (which applies it), the
  client's connection is reset before any of the answer: a lost response;
- truncate_request: only part of the request body reaches the server, then
  both sides are cut: the server must apply nothing;
- truncate_response: the answer is cut in the middle of its body;
- truncate_after_headers: only the answer's status line and headers arrive;
- delay: the exchange is held for a short while, then passes whole;
- drop: the request is swallowed, never forwarded; the client is cut.

Each client connection carries one exchange: the proxy asks the server to
close after its answer (`Connection: close`) so the answer's end is simply
the end of the stream, and tells the client the same. Every read has a
timeout and every loop is bounded, so a misbehaving peer cannot hang a test.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

FAULTS = ("reset_after_request", "truncate_request", "truncate_response",
          "truncate_after_headers", "delay", "drop")
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
IO_TIMEOUT_S = 30.0
MAX_DELAY_S = 0.25


class _Cut(Exception):
    """The peer went away or sent something we cannot frame: end this exchange."""


def _recv_until(sock: socket.socket, marker: bytes, limit: int) -> tuple[bytes, bytes]:
    """(bytes up to and including `marker`, what was read after it)."""
    buf = b""
    for _ in range(limit):  # at least one byte per round: bounded by `limit`
        at = buf.find(marker)
        if at >= 0:
            end = at + len(marker)
            return buf[:end], buf[end:]
        if len(buf) > limit:
            raise _Cut("header too long")
        chunk = sock.recv(65536)
        if not chunk:
            raise _Cut("peer closed before the end of the headers")
        buf += chunk
    raise _Cut("header too long")


def _recv_exact(sock: socket.socket, have: bytes, size: int) -> bytes:
    buf = have
    for _ in range(size + 1):
        if len(buf) >= size:
            return buf[:size]
        chunk = sock.recv(min(65536, size - len(buf)))
        if not chunk:
            raise _Cut("peer closed mid-body")
        buf += chunk
    raise _Cut("body did not arrive")


def _recv_all(sock: socket.socket, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    for _ in range(limit // 1024 + 2):
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _Cut("answer too long")
    raise _Cut("answer did not end")


def _with_close(head: bytes) -> bytes:
    """The same request or status line and headers, with `Connection: close`."""
    lines = head[:-4].split(b"\r\n")
    kept = [ln for ln in lines if not ln.lower().startswith(b"connection:")]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            size = int(value.strip())
            if not 0 <= size <= MAX_BODY_BYTES:
                raise _Cut("bad content-length")
            return size
        if name.strip().lower() == b"transfer-encoding":
            raise _Cut("chunked requests are not framed by this proxy")
    return 0


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a crashed peer or middlebox would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


@dataclass
class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to `upstream` (host, port).

    `rate` is the chance that an exchange gets a fault; `faults` the kinds to
    pick from. `enabled` may be switched off to let everything pass.
    """

    upstream: tuple[str, int]
    seed: int = 0
    rate: float = 0.4
    faults: tuple[str, ...] = FAULTS
    max_connections: int = 64
    enabled: bool = True
    injected: Counter[str] = field(default_factory=Counter)
    exchanges: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        # The first faults go through every kind once, in a seeded order, so a short
        # run exercises them all; later ones are drawn at random.
        self._first = self._rng.sample(list(self.faults), len(self.faults))
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        self.errors: list[str] = []  # proxy-side surprises, reported by the test

    def __enter__(self) -> FaultProxy:
        self._accepter.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._accepter.join(timeout=5)
        self._listener.close()
        for t in self._threads:
            t.join(timeout=IO_TIMEOUT_S)

    def _pick(self) -> tuple[str | None, float]:
        """One seeded decision per exchange: (fault or None, a fraction for where to cut)."""
        with self._lock:
            self.exchanges += 1
            hit = self.enabled and self._rng.random() < self.rate
            fault = None
            if hit:
                fault = self._first.pop() if self._first else self._rng.choice(self.faults)
            where = self._rng.random()
            if fault:
                self.injected[fault] += 1
            return fault, where

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(timeout=IO_TIMEOUT_S):
                _reset(client)
                continue
            t = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _serve(self, client: socket.socket) -> None:
        try:
            client.settimeout(IO_TIMEOUT_S)
            self._exchange(client)
        except (_Cut, OSError):
            pass  # the client went away: its retry is what the proof exercises
        except Exception as exc:  # noqa: BLE001 - reported, never hidden
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            client.close()
            self._slots.release()

    def _exchange(self, client: socket.socket) -> None:
        head, rest = _recv_until(client, b"\r\n\r\n", MAX_HEADER_BYTES)
        body = _recv_exact(client, rest, _content_length(head))
        fault, where = self._pick()
        if fault == "drop":
            _reset(client)
            return
        if fault == "delay":
            time.sleep(MAX_DELAY_S * where)
        request = _with_close(head) + body
        with socket.create_connection(self.upstream, timeout=IO_TIMEOUT_S) as server:
            if fault == "truncate_request":
                cut = len(head) + int(len(body) * where) if body else int(len(head) * where)
                server.sendall(request[: max(1, min(cut, len(request) - 1))])
                server.shutdown(socket.SHUT_WR)
                _reset(client)
                return
            server.sendall(request)
            answer = _recv_all(server, MAX_BODY_BYTES)
        if fault == "reset_after_request":
            _reset(client)
            return
        try:
            ahead, _ = _recv_until_bytes(answer)
        except _Cut:
            client.sendall(answer)
            return
        if fault == "truncate_after_headers":
            client.sendall(_with_close(ahead))
            _reset(client)
            return
        answer_body = answer[len(ahead):]
        if fault == "truncate_response" and answer_body:
            client.sendall(_with_close(ahead) + answer_body[: int(len(answer_body) * where)])
            _reset(client)
            return
        client.sendall(_with_close(ahead) + answer_body)


def _recv_until_bytes(answer: bytes) -> tuple[bytes, bytes]:
    at = answer.find(b"\r\n\r\n")
    if at < 0:
        raise _Cut("answer without headers")
    return answer[: at + 4], answer[at + 4:]
