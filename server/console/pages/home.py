"""The start page: who is signed in and where they can go."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...rules.access import StaffMember
from ..kit import PREFIX, page_require, redirect, render
from ..menu import N_, Entry

router = APIRouter()
MENU = [Entry("/", N_("Home"), "self.read", order=0)]
Signed = Annotated[StaffMember, page_require("self.read")]


@router.get("")
async def bare() -> Response:
    return redirect(PREFIX + "/")


@router.get("/")
async def home(request: Request, who: Signed) -> Response:
    return render(request, "home.html")
