"""Feeding a sequencer from a stream of lines, pipelined (``bordergate log append``).

One entry per line (the newline is not part of the entry; a last line without
one is an entry too).  The stream is read in large blocks and split in C; each
chunk of entries is submitted without waiting for the previous one to be
durable, so reading, splitting and the sequencer's writer thread overlap, as
they do for a caller of the library (issue 16 item 6).  At most ``ahead``
entries wait in the sequencer's queue: the feeder then waits for the oldest
submission (never a ``PushBack``).  One wait at the end settles every
submission; the result says how many entries are durable and the first
failure, if any, so a caller never reports success for a partial feed.

This module never interprets entries and never publishes: the caller decides
when a checkpoint is due.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import BinaryIO

from bordergate.errors import BordergateError, Unavailable
from bordergate.tlog.sequencer import Sequencer

__all__ = ["FeedResult", "feed_lines"]

#: Bytes read from the stream at a time.
READ_BLOCK = 8 << 20
#: Entries per submission (the sequencer's default batch).
CHUNK = 65_536


@dataclass(frozen=True)
class FeedResult:
    """What became of a feed: entries durable, entries refused, the first failure."""

    appended: int
    failed: int
    error: BordergateError | None


def feed_lines(seq: Sequencer, stream: BinaryIO, *, chunk: int = CHUNK,
               ahead: int = 8 * CHUNK, block: int = READ_BLOCK,
               timeout: float | None = 120.0) -> FeedResult:
    """Submit every line of ``stream`` to ``seq``; return once each submission settled.

    Submission stops at the first refusal (an oversized entry, a failed log):
    what was submitted before it is still waited for and counted.

    Args:
        seq: a started sequencer.
        stream: binary lines, read to its end (or to the first refusal).
        chunk: entries per submission.
        ahead: entries submitted and not yet durable before the feeder waits.
        block: bytes read at a time.
        timeout: seconds to wait for any one submission to become durable.
    """
    inflight: deque[tuple[Future[int], int]] = deque()
    queued = 0
    result = _Tally()

    def submit(entries: list[bytes]) -> None:
        nonlocal queued
        while inflight and queued + len(entries) > ahead:
            queued -= result.settle(*inflight.popleft(), timeout)
        inflight.append((seq.submit(entries), len(entries)))
        queued += len(entries)

    try:
        for entries in _chunks(stream, chunk, block):
            if result.error is not None:
                break  # a submission failed: stop feeding, settle what is in flight
            submit(entries)
    except BordergateError as e:  # refused at submission (entry_too_large, log_unwritable)
        result.error = result.error or e
    while inflight:
        result.settle(*inflight.popleft(), timeout)
    return FeedResult(result.appended, result.failed, result.error)


class _Tally:
    def __init__(self) -> None:
        self.appended = 0
        self.failed = 0
        self.error: BordergateError | None = None

    def settle(self, future: Future[int], count: int, timeout: float | None) -> int:
        """Wait for one submission; count it; return its entries."""
        try:
            future.result(timeout)
        except BordergateError as e:
            self.failed += count
            self.error = self.error or e
        except TimeoutError:
            self.failed += count
            self.error = self.error or Unavailable(
                f"entries not durable within {timeout} s", code="append_timeout")
        else:
            self.appended += count
        return count


def _chunks(stream: BinaryIO, chunk: int, block: int) -> Iterator[list[bytes]]:
    """Lists of at most ``chunk`` entries: the stream's lines, read ``block`` bytes at a
    time and split in C (a line may span blocks)."""
    ready: list[bytes] = []
    tail = b""
    while data := stream.read(block):
        lines = (tail + data if tail else data).split(b"\n")
        tail = lines.pop()
        ready += lines
        while len(ready) >= chunk:
            yield ready[:chunk]
            del ready[:chunk]
    if tail:
        ready.append(tail)
    while ready:
        yield ready[:chunk]
        del ready[:chunk]
