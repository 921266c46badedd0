"""Key events: what an auditor must see of key custody (promises 7 and 8).

Every key operation that matters to an auditor (a KEK version created, data
keys re-wrapped by a rotation, a KEK version destroyed, a data key created,
a subject crypto-shredded) yields one :class:`KeyEvent`.  The gateway logs
them as ``key-event`` entries.

A key event must never hold key bytes, wrapped or not.  It holds the raw
subject id only as a reference for the logger, which replaces it with a keyed
pseudonym (:meth:`KeyEvent.to_entry`); it must never be logged raw.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bordergate.subjects import SubjectId

__all__ = ["KeyEvent", "KeyEventKind"]


class KeyEventKind(enum.StrEnum):
    """What happened to which key."""

    KEK_CREATED = "kek-created"
    KEK_ROTATED = "kek-rotated"
    KEK_DESTROYED = "kek-destroyed"
    DATA_KEY_CREATED = "data-key-created"
    SUBJECT_SHREDDED = "subject-shredded"


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """One auditable key operation; never carries key material.

    Attributes:
        kind: what happened.
        jurisdiction: whose key ring.
        kek_version: the KEK version created, destroyed, rotated to, or that
            wrapped the data key concerned.
        time: seconds since the Unix epoch, from the key ring's clock.
        subject: the subject concerned (data-key and shred events only); the
            logger must pseudonymise it (promise 7).
        count: for ``kek-rotated``, how many data keys were re-wrapped.
    """

    kind: KeyEventKind
    jurisdiction: str
    kek_version: int
    time: float
    subject: SubjectId | None = None
    count: int | None = None

    def to_entry(self, pseudonym: Callable[[str], str]) -> dict[str, object]:
        """A log-ready dict: the subject id replaced by ``pseudonym(str(subject))``."""
        entry: dict[str, object] = {
            "event": self.kind.value,
            "jurisdiction": self.jurisdiction,
            "kek_version": self.kek_version,
            "at": datetime.fromtimestamp(self.time, UTC).isoformat().replace("+00:00", "Z"),
        }
        if self.subject is not None:
            entry["subject"] = pseudonym(str(self.subject))
        if self.count is not None:
            entry["count"] = self.count
        return entry
