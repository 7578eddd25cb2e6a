"""What both web faces share: the rep's local UI (agent/ui) and the staff console
(server/console). Security headers, CSRF tokens, the Host allowlist, gettext catalogs
(English and 简体中文) and the Jinja environments that use them.

Pages are server-rendered; the only scripts and styles are files served by the app
itself, so the Content-Security-Policy can forbid every other origin and every inline
script: a page that works here works with the network off."""

from __future__ import annotations

import gettext
import hashlib
import hmac
import io
import secrets
from collections.abc import Iterable
from datetime import datetime, tzinfo
from functools import lru_cache
from pathlib import Path

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

# The locales we ship catalogs for; the first is the fallback.
LOCALES: tuple[str, ...] = ("en", "zh_CN")
LOCALE_NAMES = {"en": "English", "zh_CN": "简体中文"}
LOCALE_COOKIE = "fv_lang"

# No external origin anywhere, no inline script or style; images may be data: URLs
# (server-drawn QR codes and thumbnails). `connect-src 'self'` keeps fetch() home.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Pages carry customer data: never keep them in a shared or disk cache.
    "Cache-Control": "no-store",
}

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def new_secret() -> str:
    """A random token for sessions, launch tokens and CSRF keys (256 bits)."""
    return secrets.token_urlsafe(32)


def csrf_token(key: bytes, session_id: str) -> str:
    """The CSRF token bound to one session: HMAC of the session id, so a page of one
    session can never post for another and the server keeps no extra state."""
    return hmac.new(key, b"csrf:" + session_id.encode(), hashlib.sha256).hexdigest()


def csrf_ok(key: bytes, session_id: str, token: str | None) -> bool:
    """Whether `token` is this session's CSRF token (constant-time)."""
    if not token:
        return False
    return hmac.compare_digest(csrf_token(key, session_id), token)


def host_allowed(host: str | None, allowed: Iterable[str]) -> bool:
    """Whether the Host header names us. Defeats DNS rebinding: a page from another
    origin that resolves its name to 127.0.0.1 still sends its own name as Host."""
    if not host:
        return False
    return host.lower() in {a.lower() for a in allowed}


def token_digest(token: str) -> str:
    """What we store of a session or launch token: its SHA-256 (a copy of the store
    does not yield live tokens)."""
    return hashlib.sha256(token.encode()).hexdigest()


# --- translations ----------------------------------------------------------------

@lru_cache(maxsize=16)
def translations(locale_dir: Path, locale: str) -> gettext.NullTranslations:
    """The gettext catalog for `locale`, compiled from its .po file on first use (no
    build step, no binary files in the repository). English is the source language:
    its catalog may be empty and msgids are shown as they are."""
    po = locale_dir / locale / "LC_MESSAGES" / "messages.po"
    if not po.is_file():
        return gettext.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=locale)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The locale to render: the one the user chose (cookie), else the browser's
    first supported preference, else English."""
    if cookie in LOCALES:
        return cookie  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower().replace("-", "_")
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return LOCALES[0]


def _babel_locale(locale: str) -> str:
    return "zh_Hans_CN" if locale == "zh_CN" else "en_GB"


class Pages:
    """One Jinja environment per locale over a template folder, each with its
    catalog installed (`{% trans %}`, `_()`, `ngettext`) and date filters in a given
    time zone. Autoescape is on for every template."""

    def __init__(self, templates: Path, locale_dir: Path, tz: tzinfo | None = None) -> None:
        self.templates = templates
        self.locale_dir = locale_dir
        self.tz = tz
        self._envs: dict[str, Environment] = {}

    def env(self, locale: str) -> Environment:
        if locale not in LOCALES:
            locale = LOCALES[0]
        env = self._envs.get(locale)
        if env is None:
            env = Environment(loader=FileSystemLoader(self.templates),
                              autoescape=select_autoescape(default=True, default_for_string=True),
                              extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
            env.install_gettext_translations(  # type: ignore[attr-defined]
                translations(self.locale_dir, locale), newstyle=True)
            bl = _babel_locale(locale)
            env.filters["datetime"] = lambda v, fmt="medium": _fmt_dt(v, fmt, bl, self.tz)
            env.filters["date"] = lambda v, fmt="medium": _fmt_d(v, fmt, bl, self.tz)
            env.globals["locale"] = locale
            env.globals["locales"] = LOCALE_NAMES
            self._envs[locale] = env
        return env

    def render(self, locale: str, name: str, **context: object) -> str:
        return self.env(locale).get_template(name).render(**context)

    def gettext(self, locale: str) -> gettext.NullTranslations:
        """For strings built in Python (flash messages, refusals shown on a page)."""
        return translations(self.locale_dir, locale if locale in LOCALES else LOCALES[0])


def _parse(v: object) -> datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return v
    return datetime.fromisoformat(str(v).replace("Z", "+00:00"))


def _fmt_dt(v: object, fmt: str, locale: str, tz: tzinfo | None) -> str:
    dt = _parse(v)
    if dt is None:
        return ""
    return format_datetime(dt, fmt, tzinfo=tz or dt.tzinfo, locale=locale)


def _fmt_d(v: object, fmt: str, locale: str, tz: tzinfo | None) -> str:
    if v is None or v == "":
        return ""
    text = str(v)
    if len(text) == 10:  # a plain day (YYYY-MM-DD): no time zone to apply
        from datetime import date
        return format_date(date.fromisoformat(text), fmt, locale=locale)
    dt = _parse(v)
    assert dt is not None
    if tz is not None and dt.tzinfo is not None:
        dt = dt.astimezone(tz)
    return format_date(dt.date(), fmt, locale=locale)
