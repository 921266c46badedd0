"""The gateway's one bounded cache: first in, first out.

The gateway remembers pure results on its read path (parsed request shapes,
read plans, decisions, pseudonyms, verified tokens, parsed query strings).
Each of those caches is a :class:`BoundedFifoCache`: a mapping that holds at
most ``max_entries`` items and, when full, drops the item that was *inserted*
first.  Hits do not reorder anything (no LRU bookkeeping on the hot path);
the caches are small and their keys turn over every second anyway, so FIFO
is as good as LRU here and cheaper.

Only exact results go in: a hit must give what computing the value again
would give (a cached verified token is re-checked against the clock by its
owner, ``gateway.auth.VerifiedTokenCache``).  This module must never do I/O,
read a clock or hold a lock: each cache belongs to one event loop.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["BoundedFifoCache"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedFifoCache(Generic[K, V]):
    """At most ``max_entries`` items; past that, the oldest insertion is evicted."""

    __slots__ = ("_entries", "max_entries")

    def __init__(self, max_entries: int) -> None:
        """Raises:
            ValueError: ``max_entries`` is not positive (programmer misuse).
        """
        if max_entries < 1:
            raise ValueError("a bounded cache holds at least one entry")
        self.max_entries = max_entries
        self._entries: dict[K, V] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K) -> V | None:
        """The value cached under ``key``, or None (a hit changes no order)."""
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        """Cache ``value``; evicts the oldest insertions past ``max_entries``.

        Replacing the value of a cached key keeps its place in the order.
        """
        entries = self._entries
        entries[key] = value
        while len(entries) > self.max_entries:
            del entries[next(iter(entries))]

    def discard(self, key: K) -> None:
        """Forget ``key`` if it is cached."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
