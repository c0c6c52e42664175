"""What a subject access request asks for: who asked, when, by when it is due, and which footage is in scope."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime

from redactor_video.errors import RequestError


def due_date(received: date) -> date:
    """One month after receipt (GDPR Art. 12(3)); a day the next month lacks becomes that month's last day."""
    year, month = (received.year + 1, 1) if received.month == 12 else (received.year, received.month + 1)
    return date(year, month, min(received.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class SubjectRequest:
    """One Art. 15 request: its reference, when it was received, and the time window and cameras searched.

    Times are timezone-aware; the window is [start, end) and either end may be open.
    """

    request_id: str
    received: date
    start: datetime | None = None
    end: datetime | None = None
    cameras: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        rid = self.request_id.strip()
        if not rid or len(rid) > 100 or not rid.isprintable():
            raise RequestError("the request id must be 1-100 printable characters")
        object.__setattr__(self, "request_id", rid)
        for moment in (self.start, self.end):
            if moment is not None and moment.tzinfo is None:
                raise RequestError("the search window needs timezone-aware times")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise RequestError("--to must be later than --from")
        object.__setattr__(self, "cameras", tuple(dict.fromkeys(self.cameras)))

    @property
    def due(self) -> date:
        return due_date(self.received)

    def to_dict(self) -> dict:
        return {"request_id": self.request_id, "received": self.received.isoformat(), "due": self.due.isoformat(),
                "from": self.start.isoformat() if self.start else None,
                "to": self.end.isoformat() if self.end else None, "cameras": list(self.cameras)}
