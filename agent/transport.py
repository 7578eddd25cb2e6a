"""Signed HTTP to the server: every request is signed by the device key and
every successful response must carry the pinned server key's signature."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import ipaddress
import os
import secrets
import select
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schema import signing

GZIP_MIN_BYTES = 64 * 1024


class Offline(Exception):
    """The server could not be reached; nothing was lost, try again later."""


class ServerUnavailable(Offline):
    """The server answered but cannot store data now (503, e.g. its disk is full): as
    with no network, nothing was lost and the next sync sends it again."""


class ServerRefused(Exception):
    """The server answered with an error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.status = status
        self.code = code
        self.message = message


class UntrustedResponse(Exception):
    """A response did not carry a valid signature of the pinned server key."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, insecure: bool) -> str:
    """Refuse plain http:// to anything but loopback unless explicitly insecure."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not insecure:
        raise ValueError(
            f"refusing plain http:// to {parts.hostname}: use https:// or pass --insecure"
        )
    return url.rstrip("/")


def _raise_for(resp: Any) -> None:
    """ServerRefused (or ServerUnavailable) for an error answer: an httpx.Response or a
    _Response, which have the same attributes."""
    try:
        body = resp.json()
        code, message = body.get("error", "http_error"), body.get("message", resp.text)
    except ValueError:
        code, message = "http_error", resp.text[:200] or resp.reason_phrase
    if resp.status_code == 503:
        raise ServerUnavailable(f"the server cannot store data right now ({code})")
    raise ServerRefused(resp.status_code, code, message)


def _httpx() -> Any:
    """httpx, imported only where it is still used (a configured proxy).
    httpx imports its own command-line client (click, rich, pygments) whenever those
    are installed; we never use it: an absent module makes httpx fall back to its stub."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    import httpx

    return httpx


def unsigned_post(url: str, path: str, payload: dict[str, Any], timeout: float = 30) -> Any:
    """A request made before the device has keys on the server (enrollment); on the
    same client as Transport (http.client, httpx only through a proxy): importing httpx
    was ~0.1-0.3 s of every `fieldvault enroll`."""
    client = _client(url, timeout)
    try:
        resp = client.send("POST", path, orjson.dumps(payload),
                           {"content-type": "application/json"})
    except _Unreachable as exc:
        raise Offline(f"cannot reach {url}: {exc}") from exc
    finally:
        client.close()
    if resp.status_code >= 400:
        _raise_for(resp)
    return orjson.loads(resp.content)


def _tls_for(url: str) -> ssl.SSLContext | bool:
    """TLS settings for an httpx client of `url`: httpx's default (verify against
    certifi's CAs) for https://. For a plain http:// server (loopback, or --insecure) no
    CA bundle is loaded: loading one costs ~30-50 ms here, a tenth of a no-op sync, for
    a context that would never be used. The context given instead trusts no CA at all
    while still requiring a verified certificate and host name, so a TLS connection
    through it (there is none: requests go to the base URL, redirects are not followed)
    fails closed rather than going unverified."""
    if urlsplit(url).scheme == "https":
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname, no CA


def verified_tls_context() -> ssl.SSLContext:
    """The CAs an https:// server is verified against, as httpx's default chooses them:
    $SSL_CERT_FILE, else $SSL_CERT_DIR, else certifi's bundle. Certificate and host
    name are both required (ssl.create_default_context)."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def proxy_configured() -> bool:
    """Whether the environment names an outbound proxy (any case): then the requests go
    through httpx, which applies it (and no_proxy) exactly as before."""
    return any(os.environ.get(v) or os.environ.get(v.upper()) for v in PROXY_VARIABLES)


class _Unreachable(Exception):
    """The request did not get an answer (connection refused or dropped, timeout, TLS)."""


class _Response:
    """What Transport reads of an answer: the attributes of an httpx.Response it used."""

    def __init__(self, status_code: int, reason_phrase: str, headers: http.client.HTTPMessage,
                 content: bytes) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers  # case-insensitive .get, as httpx's
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.content)  # orjson.JSONDecodeError is a ValueError


def _readable(sock: Any) -> bool:
    """Whether an idle socket has something to read (for a kept-alive connection: EOF,
    the server hung up). poll where there is one (no descriptor limit), else select."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


class _Connection:
    """One keep-alive HTTP/1.1 connection to the server, on the standard library's
    http.client. Why not httpx here: importing httpx and httpcore (h11, anyio, idna,
    cookiejar and urllib.request, logging) was ~40% of a `fieldvault sync` with nothing
    new; the agent makes one request at a time to one server, which http.client does
    well. As httpcore does, a kept-alive socket the server has closed meanwhile (it is
    readable: EOF) is replaced before the request rather than failing it. One request at
    a time, whichever thread sends it (the pull's prefetch thread, the UI's)."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "", parts.port
        self.prefix = parts.path.rstrip("/")  # a server under a path: https://host/fv
        self.timeout = timeout
        self.tls = verified_tls_context() if self.https else None
        self.conn: http.client.HTTPConnection | None = None
        self.lock = threading.Lock()
        self.aborted = False

    def _connection(self) -> http.client.HTTPConnection:
        conn = self.conn
        if conn is not None and conn.sock is not None:
            if _readable(conn.sock):  # the server closed it (idle limit) or sent unasked
                conn.close()
                conn = None
        if conn is None:
            if self.https:
                conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                   context=self.tls)
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn = conn
        return conn

    def send(self, method: str, path_qs: str, body: bytes, headers: dict[str, str]) -> _Response:
        with self.lock:
            conn = self._connection()
            try:
                conn.request(method, self.prefix + path_qs, body=body,
                             headers={**headers, "accept-encoding": "gzip"})
                if self.aborted:  # abandoned while it was being sent
                    raise ConnectionAbortedError
                resp = conn.getresponse()
                content = resp.read()
            except (OSError, http.client.HTTPException) as exc:  # timeouts and TLS too
                self.close_now()
                raise _Unreachable(exc.__class__.__name__) from exc
            if resp.will_close:
                self.close_now()
        if (resp.getheader("content-encoding") or "").strip().lower() == "gzip":
            try:
                content = gzip.decompress(content)
            except (OSError, EOFError) as exc:  # not gzip after all, or cut short
                raise _Unreachable("DecodingError") from exc
        return _Response(resp.status, resp.reason, resp.headers, content)

    def abort(self) -> None:
        """Called from another thread: the request on this connection fails now, whether
        it waits for its answer (shutdown wakes a blocked read; close alone would not)
        or has not been sent yet (the flag, checked once it is). `resume` clears it."""
        self.aborted = True
        conn = self.conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def resume(self) -> None:
        self.aborted = False

    def close_now(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        with self.lock:
            self.close_now()


class _HttpxConnection:
    """The same through httpx, for a configured proxy (see proxy_configured)."""

    def __init__(self, url: str, timeout: float) -> None:
        self.httpx = httpx = _httpx()
        self.client = httpx.Client(base_url=url, timeout=timeout, verify=_tls_for(url),
                                   headers={"accept-encoding": "gzip"})

    def send(self, method: str, path_qs: str, body: bytes, headers: dict[str, str]) -> Any:
        try:
            return self.client.request(method, path_qs, content=body, headers=headers)
        except self.httpx.TransportError as exc:
            raise _Unreachable(exc.__class__.__name__) from exc

    def close(self) -> None:
        self.client.close()


def _client(url: str, timeout: float) -> _Connection | _HttpxConnection:
    """The agent's HTTP client: http.client, or httpx when a proxy is configured."""
    return _HttpxConnection(url, timeout) if proxy_configured() else _Connection(url, timeout)


@dataclass(frozen=True)
class Encoded:
    """A request body as it goes on the wire."""

    body: bytes
    gzipped: bool


def encode(payload: bytes) -> Encoded:
    """A large JSON body gzipped (level 1: most of the saving at a fraction of the CPU)."""
    if len(payload) >= GZIP_MIN_BYTES:
        return Encoded(gzip.compress(payload, compresslevel=1), True)
    return Encoded(payload, False)


class Transport:
    """A keep-alive HTTP client that signs requests as one device."""

    def __init__(self, url: str, device_id: str, key: Ed25519PrivateKey, server_pub: bytes,
                 insecure: bool = False, timeout: float = 60) -> None:
        self.url = check_url(url, insecure)
        self.device_id = device_id
        self.key = key
        self.server_pub_raw = server_pub
        self.server_pub = Ed25519PublicKey.from_public_bytes(server_pub)
        self.last_nonce = ""  # binds a wipe order to the request that fetched it
        self.timeout = timeout
        self.client = _client(self.url, timeout)
        # More connections, for requests in flight at once (a push's two batches): one
        # keep-alive connection carries one request at a time.
        self.lanes: dict[int, _Connection | _HttpxConnection] = {0: self.client}
        self._lanes_lock = threading.Lock()

    def close(self) -> None:
        for client in self.lanes.values():
            client.close()

    def abort(self, lane: int) -> None:
        """Close a lane's connection from another thread: a request waiting on it fails
        (Offline) at once instead of waiting for its answer."""
        client = self.lanes.get(lane)
        if isinstance(client, _Connection):
            client.abort()
        elif client is not None and lane != 0:  # through a proxy: closed, made anew if used
            with self._lanes_lock:
                self.lanes.pop(lane, None)
            client.close()

    def resume(self) -> None:
        """Every lane takes requests again (after `abort`, once its request has ended)."""
        for client in self.lanes.values():
            if isinstance(client, _Connection):
                client.resume()

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                payload: bytes | Encoded | None = None) -> Any:
        """`payload`: JSON bytes, or a body `encode` already made (a push prepares its next
        batch's while the current one is in flight)."""
        return self.request_on(0, method, path, params, payload)[0]

    def request_on(self, lane: int, method: str, path: str,
                   params: dict[str, Any] | None = None,
                   payload: bytes | Encoded | None = None) -> tuple[Any, str]:
        """`request` on connection `lane` (threads may use different lanes at once); the
        answer and the request's nonce, which a wipe order in the answer is bound to."""
        with self._lanes_lock:
            if lane not in self.lanes:
                self.lanes[lane] = _client(self.url, self.timeout)
        path_qs = path + ("?" + urlencode(params) if params else "")
        encoded = payload if isinstance(payload, Encoded) else encode(payload or b"")
        body = encoded.body
        headers = {"content-type": "application/json"}
        if encoded.gzipped:
            headers["content-encoding"] = "gzip"
        ts, nonce = str(int(time.time())), secrets.token_urlsafe(18)
        if lane == 0:
            self.last_nonce = nonce  # also when the request fails: as before lanes existed
        sig = self.key.sign(signing.request_message(method, path_qs, ts, nonce, body,
                                                    device_id=self.device_id))
        headers.update({
            signing.HDR_DEVICE: self.device_id, signing.HDR_TIMESTAMP: ts,
            signing.HDR_NONCE: nonce, signing.HDR_SIGNATURE: signing.b64e(sig),
        })
        try:
            resp = self.lanes[lane].send(method, path_qs, body, headers)
        except _Unreachable as exc:
            raise Offline(f"cannot reach {self.url}: {exc}") from exc
        if resp.status_code >= 400:
            _raise_for(resp)
        try:
            self.server_pub.verify(
                signing.b64d(resp.headers.get(signing.HDR_SERVER_SIGNATURE, "")),
                signing.response_message(nonce, resp.status_code, resp.content),
            )
        except (InvalidSignature, ValueError):
            raise UntrustedResponse(
                "the server's answer is not signed by the key pinned at enrollment"
            ) from None
        return orjson.loads(resp.content), nonce
