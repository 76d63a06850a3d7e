"""``--license-allow``: keep only records whose source licence is on the allow-list."""

from __future__ import annotations

from typing import Any

from synth.pipeline import Filter, Stage
from synth.records import Record
from synth.seeds.licenses import allowed, record_license


class LicenseFilter(Filter):
    """Drops records whose seed's licence (``unknown`` when unread) is not allowed.

    The reject reason names the licence (``license:GPL-3.0``), so the card shows what went.
    """

    name = "license"

    def __init__(self, allow: tuple[str, ...]) -> None:
        super().__init__()
        self.allow = frozenset(allow)

    def keep(self, record: Record) -> bool | tuple[bool, str]:
        lic = record_license(record)
        return True if allowed(lic, self.allow) else (False, f"license:{lic}")


def license_stages(output: Any) -> list[Stage]:
    """A licence filter to put first when ``--license-allow`` was given (none otherwise)."""
    if output is None or not output.license_allow:
        return []
    return [LicenseFilter(tuple(output.license_allow))]
