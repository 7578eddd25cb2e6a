"""Form bodies to the library's fields and back: times typed in the laptop's time
zone (datetime-local inputs) to UTC instants, checkboxes, the browser's geolocation."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

from schema.clock import iso
from schema.fields import CUSTOMER_EDITABLE_FIELDS

VISIT_TEXT = ("purpose", "summary", "outcome", "feedback", "competitors", "next_place",
              "next_content")
VISIT_TIMES = ("started_at", "ended_at", "next_at")


def to_utc(value: str, tz: tzinfo | None) -> str | None:
    """A datetime-local value ("2026-12-02T09:30") read in the laptop's zone, as UTC."""
    value = value.strip()
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz) if tz else moment.astimezone()
    return iso(moment)


def to_local_input(value: str | None, tz: tzinfo | None) -> str:
    """An instant as a datetime-local input value in the laptop's zone."""
    if not value:
        return ""
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")


def text(form: Mapping[str, Any], key: str) -> str:
    value = form.get(key, "")
    return value.strip() if isinstance(value, str) else ""


def location(form: Mapping[str, Any]) -> str:
    """The typed place, plus the browser's position when the rep allowed it, with its
    accuracy and where it came from (a reviewer can tell a typed place from a fix)."""
    typed = text(form, "location")
    lat, lon, acc = text(form, "geo_lat"), text(form, "geo_lon"), text(form, "geo_accuracy")
    if not (lat and lon):
        return typed
    try:
        fix = f"{float(lat):.5f},{float(lon):.5f} ±{round(float(acc or 0))} m, browser geolocation"
    except ValueError:
        return typed
    return f"{typed} ({fix})" if typed else fix


def visit_fields(form: Mapping[str, Any], tz: tzinfo | None, partial: bool = False) -> dict[str, Any]:
    """The visit form as VisitCreate/VisitPatch fields. With `partial` (an edit) only
    the fields the form holds, and an emptied optional time is left unchanged."""
    out: dict[str, Any] = {k: text(form, k) for k in VISIT_TEXT}
    out["location"] = location(form)
    out["planned"] = text(form, "planned") in ("on", "1", "true")
    for key in VISIT_TIMES:
        out[key] = to_utc(text(form, key), tz)
    if partial:
        present = set(form) | ({"location"} if "geo_lat" in form else set())
        # an edit form always carries the purpose; "planned" is a checkbox: absent = off
        if "purpose" in form:
            present.add("planned")
        patch = {k: v for k, v in out.items() if k in present and v is not None}
        if text(form, "submit"):  # a draft, submitted with this save
            patch["status"] = "submitted"
        return patch
    out["customer_id"] = text(form, "customer_id")
    out["status"] = "draft" if text(form, "draft") else "submitted"
    return out


def customer_fields(form: Mapping[str, Any]) -> dict[str, Any]:
    return {k: text(form, k) for k in CUSTOMER_EDITABLE_FIELDS if k in form}
