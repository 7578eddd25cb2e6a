"""TODO(issue 11): routes."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
