"""The write-ahead record format for small batches (shared by the backends).

A small batch (fewer entries than the partial bundle it would rewrite) is
made durable as one record instead of a rewritten partial bundle: a 24-byte
header (magic ``BGW1``, big-endian uint64 index of the first entry, uint32
entry count, uint32 payload length, uint32 CRC-32 of the payload) and the
payload, the entries in entry-bundle encoding.  A torn or damaged record ends
what was made durable: it was never acknowledged.

This module must never decide durability itself: the backends write and sync.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from bordergate.errors import VerificationError
from bordergate.tlog.tiles import decode_bundle

__all__ = ["HEADER", "WalBatch", "decode_records", "encode_record"]

HEADER = struct.Struct(">4sQIII")
MAGIC = b"BGW1"

WalBatch = tuple[int, list[bytes]]
"""``(index of the first entry, entries)`` of one write-ahead record."""


def encode_record(first: int, count: int, encoded: bytes) -> bytes:
    """Frame one batch (``encoded``: its entries in bundle encoding) as a record."""
    return HEADER.pack(MAGIC, first, count, len(encoded), zlib.crc32(encoded)) + encoded


def decode_records(data: bytes) -> Iterator[tuple[int, int, list[bytes]]]:
    """Yield ``(offset after the record, first index, entries)`` for intact records.

    Stops silently at the first torn or damaged record.
    """
    pos = 0
    while pos + HEADER.size <= len(data):
        magic, first, count, length, crc = HEADER.unpack_from(data, pos)
        start = pos + HEADER.size
        body = data[start:start + length]
        if magic != MAGIC or len(body) != length or zlib.crc32(body) != crc:
            return
        try:
            entries = decode_bundle(body, count)
        except VerificationError:
            return
        pos = start + length
        yield pos, first, entries
