"""Signed HTTP to the server: every request is signed by the device key and
every successful response must carry the pinned server key's signature."""

from __future__ import annotations

import gzip
import ipaddress
import secrets
import ssl
import sys
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schema import signing

# httpx imports its own command-line client (click, rich, pygments) whenever those are
# installed, which made every `fieldvault sync` pay for them at start-up. We never use
# it: an absent module makes httpx fall back to its stub.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpx  # noqa: E402

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


def _raise_for(resp: httpx.Response) -> None:
    try:
        body = resp.json()
        code, message = body.get("error", "http_error"), body.get("message", resp.text)
    except ValueError:
        code, message = "http_error", resp.text[:200] or resp.reason_phrase
    if resp.status_code == 503:
        raise ServerUnavailable(f"the server cannot store data right now ({code})")
    raise ServerRefused(resp.status_code, code, message)


def unsigned_post(url: str, path: str, payload: dict[str, Any], timeout: float = 30) -> Any:
    """A request made before the device has keys on the server (enrollment)."""
    try:
        resp = httpx.post(url + path, content=orjson.dumps(payload), timeout=timeout,
                          headers={"content-type": "application/json"})
    except httpx.TransportError as exc:
        raise Offline(f"cannot reach {url}: {exc.__class__.__name__}") from exc
    if resp.status_code >= 400:
        _raise_for(resp)
    return resp.json()


def _tls_for(url: str) -> ssl.SSLContext | bool:
    """TLS settings for a client of `url`: httpx's default (verify against certifi's
    CAs) for https://. For a plain http:// server (loopback, or --insecure) no CA bundle
    is loaded: loading one costs ~30-50 ms here, a tenth of a no-op sync, for a context
    that would never be used. The context given instead trusts no CA at all while still
    requiring a verified certificate and host name, so a TLS connection through it
    (there is none: requests go to the base URL, redirects are not followed) fails
    closed rather than going unverified."""
    if urlsplit(url).scheme == "https":
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname, no CA


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
        self.client = httpx.Client(base_url=self.url, timeout=timeout, verify=_tls_for(self.url),
                                   headers={"accept-encoding": "gzip"})

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                payload: bytes | None = None) -> Any:
        path_qs = path + ("?" + urlencode(params) if params else "")
        body = payload or b""
        headers = {"content-type": "application/json"}
        if len(body) >= GZIP_MIN_BYTES:
            body = gzip.compress(body, compresslevel=1)
            headers["content-encoding"] = "gzip"
        ts, nonce = str(int(time.time())), secrets.token_urlsafe(18)
        self.last_nonce = nonce
        sig = self.key.sign(signing.request_message(method, path_qs, ts, nonce, body,
                                                    device_id=self.device_id))
        headers.update({
            signing.HDR_DEVICE: self.device_id, signing.HDR_TIMESTAMP: ts,
            signing.HDR_NONCE: nonce, signing.HDR_SIGNATURE: signing.b64e(sig),
        })
        try:
            resp = self.client.request(method, path_qs, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise Offline(f"cannot reach {self.url}: {exc.__class__.__name__}") from exc
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
        return orjson.loads(resp.content)
