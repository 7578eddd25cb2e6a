"""The archive's part for visit review (拜访记录审核), call-back verification (电话回访),
quarantine and conflict review."""

from __future__ import annotations

from .facade import ArchiveBase


class ReviewMethods(ArchiveBase):
    pass
