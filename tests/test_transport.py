"""The agent's HTTP connection (agent/transport.py, on http.client since issue 10):
what httpx did for it before must still hold, against real sockets on loopback:
a kept-alive connection the server closed is replaced, gzip answers are read, https
is verified against the CAs (and fails closed without them), a configured proxy is
still honoured (through httpx)."""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from agent.transport import Offline, Transport, _Connection, _HttpxConnection, unsigned_post


def _answer(body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
            f"\r\n{extra}\r\n").encode() + body


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        rest += conn.recv(65536)
    return head


@contextmanager
def raw_server(handle: Callable[[socket.socket], None],
               wrap: ssl.SSLContext | None = None) -> Iterator[tuple[int, list[int]]]:
    """A loopback server running `handle` on each accepted connection, one at a time;
    yields its port and the list of connections accepted so far (one entry each)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if stop.is_set():
                conn.close()
                return
            accepted.append(1)
            try:
                if wrap is not None:
                    conn = wrap.wrap_socket(conn, server_side=True)
                handle(conn)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, accepted
    finally:
        stop.set()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # wakes the accept() (closing the listener would not)
        thread.join(timeout=10)
        listener.close()


def test_a_kept_alive_connection_the_server_closed_is_replaced() -> None:
    """The server answers one request per connection and hangs up without saying so
    (as after its keep-alive idle limit): the next request opens a new connection
    instead of failing on the dead one."""
    def one_answer(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(_answer(b'{"n": 1}'))  # no "connection: close": it looks kept alive

    with raw_server(one_answer) as (port, accepted):
        client = _Connection(f"http://127.0.0.1:{port}", timeout=10)
        try:
            for _ in range(3):
                resp = client.send("GET", "/v1/x", b"", {})
                assert (resp.status_code, resp.json()) == (200, {"n": 1})
                assert client.conn is not None and client.conn.sock is not None
                # wait until the server has hung up (bounded: its next accept)
                client.conn.sock.settimeout(10)
                assert client.conn.sock.recv(1, socket.MSG_PEEK) == b""
        finally:
            client.close()
    assert len(accepted) == 3


def test_a_gzip_answer_is_read_and_a_kept_alive_connection_is_reused() -> None:
    body = b'{"big": "' + b"x" * 10_000 + b'"}'

    def answers(conn: socket.socket) -> None:
        while (head := _read_request(conn)):
            assert b"accept-encoding: gzip" in head.lower()
            packed = gzip.compress(body)
            conn.sendall(_answer(packed, "content-encoding: gzip\r\n"))

    with raw_server(answers) as (port, accepted):
        client = _Connection(f"http://127.0.0.1:{port}/prefix", timeout=10)
        try:
            for _ in range(2):
                assert client.send("POST", "/v1/y", b"{}", {}).content == body
        finally:
            client.close()
    assert len(accepted) == 1


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = generate_private_key(SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_https_is_verified_against_the_cas_and_fails_closed(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)

    def answer(conn: socket.socket) -> None:
        if _read_request(conn):
            conn.sendall(_answer(b"{}"))

    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with raw_server(answer, wrap=tls) as (port, _):
        url = f"https://127.0.0.1:{port}"
        key, server_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        server_pub = server_key.public_key().public_bytes_raw()
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        untrusted = Transport(url, "dev1", key, server_pub)  # certifi's CAs: not this one
        with pytest.raises(Offline, match="SSLCertVerificationError"):
            untrusted.request("GET", "/v1/whoami")
        untrusted.close()
        # Enrollment's unsigned request goes through the same verification.
        with pytest.raises(Offline, match="SSLCertVerificationError"):
            unsigned_post(url, "/v1/enroll", {"code": "X"})
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # as httpx read it
        trusted = _Connection(url, timeout=10)
        assert trusted.send("GET", "/v1/whoami", b"", {}).status_code == 200
        trusted.close()
        assert unsigned_post(url, "/v1/enroll", {"code": "X"}) == {}


def test_a_configured_proxy_still_goes_through_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    key, server_pub = Ed25519PrivateKey.generate(), bytes(32)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert isinstance(Transport("http://127.0.0.1:9", "d", key, server_pub).client, _Connection)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    transport = Transport("http://127.0.0.1:9", "d", key, server_pub)
    assert isinstance(transport.client, _HttpxConnection)
    transport.close()
