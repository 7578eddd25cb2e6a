"""The archive's part for: Daily visit plans (每日拜访计划) and the daily and weekly reports."""

from __future__ import annotations

from .facade import ArchiveBase


class PlanMethods(ArchiveBase):
    pass
