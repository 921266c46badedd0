"""The read side of a log: fetch and verify checkpoints, tiles and entries.

A :class:`LogSource` fetches raw objects (``checkpoint`` or tile paths) from a
directory or an HTTP base URL; :class:`LogClient` verifies everything it hands
out: the checkpoint's signature (and witness quorum, when asked), tile and
bundle shapes, proofs, and, in :meth:`LogClient.rebuild`, that the published
tiles are exactly what the entries produce.  Sizes are capped before parsing,
and an HTTP fetch is bounded in time as a whole (:data:`FETCH_DEADLINE_S`), not
only between two reads: a server that answers one byte at a time (slowloris)
ends the fetch as ``log_fetch_too_slow``, never holds an auditor for days.  An
HTTP answer is never decompressed (``object_encoding_refused``): the caps count
the bytes received, which are the bytes kept.

This module must never trust a byte it has not checked, never wait on a source
without a bound, and never write to a log.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from bordergate.errors import NotFound, Unavailable, VerificationError
from bordergate.locations import parse_log_source
from bordergate.tlog import merkle
from bordergate.tlog.checkpoint import SignedCheckpoint, open_checkpoint
from bordergate.tlog.cosignature import CosignatureVerifier, count_witnesses
from bordergate.tlog.note import Verifier
from bordergate.tlog.storage import CHECKPOINT_PATH, OBJECT_PATH, LogStorage
from bordergate.tlog.tiles import (
    ENTRIES,
    ENTRY_MAX,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileFrontier,
    TileHashes,
    TileRef,
    decode_bundle,
    decode_tile,
    tile_node_reader,
)

__all__ = [
    "FETCH_DEADLINE_S",
    "READ_TIMEOUT_S",
    "DirectorySource",
    "HttpSource",
    "LogClient",
    "LogSource",
    "ReadLimits",
    "RebuildResult",
    "StorageSource",
    "open_source",
]


@dataclass(frozen=True)
class ReadLimits:
    """Byte caps applied before parsing anything a log serves."""

    checkpoint: int = 1 << 20
    tile: int = TILE_WIDTH * merkle.HASH_SIZE
    bundle: int = TILE_WIDTH * (2 + ENTRY_MAX)


class LogSource(Protocol):
    """Fetches one raw object of a log; None when it does not exist."""

    def fetch(self, path: str, limit: int) -> bytes | None:
        """Return the bytes at ``path`` (at most ``limit``), or None if absent.

        Raises:
            VerificationError: the object is larger than ``limit``.
            Unavailable: the source cannot be reached.
        """


class StorageSource:
    """A log read straight from its storage: ``checkpoint``, tiles, and the
    content-addressed objects published beside them (``bundles/sha256-<hex>.tar``,
    ``rosters/sha256-<hex>.json``, when the storage holds objects)."""

    def __init__(self, storage: LogStorage) -> None:
        self._storage = storage

    def fetch(self, path: str, limit: int) -> bytes | None:
        # content-addressed objects (bundles/, rosters/) are read as objects, not tiles
        reader = getattr(self._storage, "read_object", None)
        data = reader(path) if reader is not None and OBJECT_PATH.fullmatch(path) \
            else self._storage.read(path)
        if data is not None and len(data) > limit:
            raise VerificationError(f"{path} is larger than {limit} bytes", code="object_too_large")
        return data


class DirectorySource(StorageSource):
    """A log directory on disk (or the database its ``log init --postgres`` pointer names)."""

    def __init__(self, root: str | Path) -> None:
        from bordergate.tlog.logdir import open_log_storage
        super().__init__(open_log_storage(Path(root)))


FETCH_DEADLINE_S = 120.0
"""The longest one HTTP fetch may take, from the request to its last byte (a 16 MiB
policy bundle at 140 KB/s): longer is ``log_fetch_too_slow``.  Read when an
:class:`HttpSource` is made."""

READ_TIMEOUT_S = 30.0
"""The longest wait for the connection or for the next bytes of an answer."""


class HttpSource:
    """A log served over HTTP(S) at ``base_url``.

    Redirects are never followed (a 3xx is ``log_unavailable``: the objects are
    where the auditor was told they are, not where the server points), each fetch
    ends within ``deadline`` seconds however slowly the server answers, and answers
    are read as sent: ``identity`` is asked for and an encoded (compressed) answer
    is ``object_encoding_refused``, since the size cap must count the bytes held.
    """

    def __init__(self, base_url: str, client: httpx.Client | None = None, *,
                 deadline: float | None = None) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.deadline = FETCH_DEADLINE_S if deadline is None else deadline
        # plain http never uses TLS: no certificate store to load (~70 ms of CPU a client)
        self._client = client or httpx.Client(timeout=min(READ_TIMEOUT_S, self.deadline),
                                              verify=self.base_url.startswith("https://"),
                                              follow_redirects=False)

    def fetch(self, path: str, limit: int) -> bytes | None:
        """The object at ``path`` (see :class:`LogSource`), within the deadline.

        The request runs in a daemon thread this call waits for at most
        ``deadline`` seconds: a server that drips its status line, headers or
        body never holds the caller longer (the thread stops at its next chunk,
        or when the server gives up).

        Raises:
            VerificationError: ``object_too_large``, ``object_encoding_refused``.
            Unavailable: ``log_unavailable`` (unreachable, an answer other than 200
                or 404, a redirect), ``log_fetch_too_slow`` (past the deadline).
        """
        url = self.base_url + path
        outcome: list[bytes | BaseException | None] = []
        stop = threading.Event()
        worker = threading.Thread(target=self._fetch_into, args=(url, path, limit, stop, outcome),
                                  name="bordergate-log-fetch", daemon=True)
        worker.start()
        worker.join(self.deadline)
        if worker.is_alive() or not outcome:
            stop.set()
            raise Unavailable(f"GET {url} took longer than {self.deadline:g} s",
                              code="log_fetch_too_slow")
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _fetch_into(self, url: str, path: str, limit: int, stop: threading.Event,
                    outcome: list[bytes | BaseException | None]) -> None:
        try:
            outcome.append(self._get(url, path, limit, stop))
        except Exception as exc:  # handed to the waiting caller, which raises it
            outcome.append(exc)

    def _get(self, url: str, path: str, limit: int, stop: threading.Event) -> bytes | None:
        try:
            with self._client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as r:
                if r.status_code == 404:
                    return None
                if r.status_code != 200:
                    raise Unavailable(f"GET {url} answered {r.status_code}", code="log_unavailable")
                encoding = r.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    # decoded, a few KiB could be gigabytes before any cap is checked
                    raise VerificationError(f"{path} came with Content-Encoding "
                                            f"{encoding[:40]!r}; only identity is read",
                                            code="object_encoding_refused")
                chunks, total = [], 0
                for chunk in r.iter_raw():
                    total += len(chunk)
                    if total > limit:
                        raise VerificationError(f"{path} is larger than {limit} bytes",
                                                code="object_too_large")
                    if stop.is_set():
                        raise Unavailable(f"GET {url}: abandoned past the deadline",
                                          code="log_fetch_too_slow")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as e:
            raise Unavailable(f"GET {url} failed: {e}", code="log_unavailable") from e


def open_source(location: str) -> LogSource:
    """A source for a directory path, an ``http(s)://`` base URL or the
    ``postgresql://`` URL of the database keeping the log.

    Raises:
        ConfigError: ``log_location`` for another URL scheme
            (:func:`bordergate.locations.parse_log_source`).
    """
    where = parse_log_source(location)
    if where.kind == "http":
        return HttpSource(where.target)
    if where.kind == "postgresql":
        from bordergate.tlog.storage.postgres import PostgresStorage
        return StorageSource(PostgresStorage(where.target))
    return DirectorySource(where.target)


@dataclass(frozen=True)
class RebuildResult:
    """What :meth:`LogClient.rebuild` proved: the tree edge at ``size`` and its root."""

    size: int
    root: bytes
    frontier: TileFrontier


class LogClient:
    """Verifying reader of one log."""

    def __init__(self, source: LogSource, verifier: Verifier, *,
                 cosigners: Sequence[CosignatureVerifier] = (), quorum: int = 0,
                 limits: ReadLimits | None = None, cache_tiles: int = 4096) -> None:
        self.source = source
        self.verifier = verifier
        self.cosigners = tuple(cosigners)
        self.quorum = quorum
        self.limits = limits or ReadLimits()
        self._cache: OrderedDict[TileRef, TileHashes] = OrderedDict()
        self._cache_size = cache_tiles
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._edges: dict[tuple[int, int], bytes] = {}
        self._node_cache_size = cache_tiles * 64

    # -- checkpoint --------------------------------------------------------
    def checkpoint(self, *, covering: int = 0) -> SignedCheckpoint:
        """Fetch and verify the current checkpoint (signature and witness quorum).

        ``covering``: the size the caller needs.  A checkpoint short of the
        quorum that is also smaller than that is "not published yet" (the
        witnessed one is still on its way), not a verification failure: it
        raises :class:`Unavailable` so a monitor retries instead of reporting
        a broken log.  Nothing is ever returned without the quorum.

        Raises:
            VerificationError: malformed, badly signed, or short of the quorum.
            Unavailable: ``checkpoint_not_witnessed_yet`` (see ``covering``).
            NotFound: the log has no checkpoint.
        """
        data = self.source.fetch(CHECKPOINT_PATH, self.limits.checkpoint)
        if data is None:
            raise NotFound("the log has no checkpoint", code="checkpoint_missing")
        return self.open(data, covering=covering)

    def open(self, data: bytes, *, covering: int = 0) -> SignedCheckpoint:
        """Verify a signed checkpoint given as bytes (see :meth:`checkpoint`)."""
        signed = open_checkpoint(data, self.verifier, cosigners=self.cosigners)
        # distinct witnesses, not keys nor names (promise 5; tlog.cosignature.group_by_witness)
        witnesses = count_witnesses(((c.name, c.key_id) for c in signed.cosignatures),
                                    self.cosigners)
        if witnesses < self.quorum and signed.checkpoint.size < covering:
            raise Unavailable(
                f"the log's checkpoint of size {signed.checkpoint.size} is not witnessed and "
                f"does not cover size {covering} yet; retry once it is published",
                code="checkpoint_not_witnessed_yet")
        if witnesses < self.quorum:
            raise VerificationError(
                f"checkpoint of size {signed.checkpoint.size} is cosigned by {witnesses} "
                f"distinct trusted witness(es), {self.quorum} required",
                code="witness_quorum_not_met")
        return signed

    # -- tiles and entries -------------------------------------------------
    def _fetch(self, ref: TileRef) -> bytes:
        limit = self.limits.bundle if ref.is_bundle else self.limits.tile
        data = self.source.fetch(ref.path, limit)
        if data is None:
            raise VerificationError(f"{ref.path} is missing", code="tile_missing")
        return data

    def tile(self, ref: TileRef) -> TileHashes:
        """The decoded tile ``ref`` with its interior nodes (cached, bounded)."""
        hit = self._cache.get(ref)
        if hit is not None:
            self._cache.move_to_end(ref)
            return hit
        try:
            tile = TileHashes(decode_tile(self._fetch(ref), ref.width))
        except VerificationError as e:
            raise VerificationError(f"{ref.path}: {e}", code=e.code) from None
        self._cache[ref] = tile
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return tile

    def bundle(self, index: int, width: int = TILE_WIDTH) -> list[bytes]:
        """The entries of one bundle."""
        ref = TileRef(ENTRIES, index, width)
        try:
            return decode_bundle(self._fetch(ref), width)
        except VerificationError as e:
            raise VerificationError(f"{ref.path}: {e}", code=e.code) from None

    def entry(self, index: int, size: int) -> bytes:
        """The entry at ``index`` of the tree of ``size`` (not proven: see proofs)."""
        if not 0 <= index < size:
            raise NotFound(f"index {index} is outside the log of size {size}",
                           code="index_out_of_range")
        b, pos = divmod(index, TILE_WIDTH)
        width = TILE_WIDTH if (b + 1) * TILE_WIDTH <= size else size % TILE_WIDTH
        return self.bundle(b, width)[pos]

    # -- proofs -------------------------------------------------------------
    def node_reader(self, tree_size: int) -> merkle.NodeReader:
        """Perfect-subtree hashes from the tiles of the published tree of ``tree_size``.

        A complete subtree's hash never changes as the tree grows, so node
        hashes are cached by ``(level, index)`` across tree sizes.
        """
        from_tiles = tile_node_reader(tree_size, self.tile)
        nodes = self._nodes

        def node(level: int, index: int) -> bytes:
            key = (level, index)
            found = nodes.get(key)
            if found is None:
                found = from_tiles(level, index)
                if len(nodes) >= self._node_cache_size:
                    nodes.clear()
                nodes[key] = found
            return found
        return node

    def root(self, size: int, tree_size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves, from the tiles of ``tree_size``."""
        if size == 0:
            return merkle.EMPTY_ROOT
        return merkle.range_hash(0, size, self.node_reader(tree_size or size))

    def inclusion_proof(self, index: int, size: int, tree_size: int | None = None
                        ) -> list[bytes]:
        """The inclusion proof of ``index`` in the tree of ``size``.

        Hashes come from the tiles of the published tree of ``tree_size``
        (default ``size``), which may be larger: older trees' partial tiles
        need not exist.
        """
        if not 0 <= index < size:
            raise NotFound(f"index {index} is outside the log of size {size}",
                           code="index_out_of_range")
        node = self.node_reader(tree_size or size)
        edges = self._edges

        def edge(begin: int, end: int) -> bytes:
            found = edges.get((begin, end))
            if found is None:
                if len(edges) > 4096:
                    edges.clear()
                found = edges[begin, end] = merkle.range_hash(begin, end, node)
            return found
        return merkle.inclusion_proof(index, size, node, edge)

    def consistency_proof(self, old_size: int, size: int, tree_size: int | None = None
                          ) -> list[bytes]:
        """The consistency proof from ``old_size`` to ``size`` (see inclusion_proof)."""
        if not 0 < old_size <= size:
            raise NotFound(f"no consistency proof from {old_size} to {size}",
                           code="index_out_of_range")
        return merkle.consistency_proof(old_size, size, self.node_reader(tree_size or size))

    def prove_entry(self, index: int, signed: SignedCheckpoint) -> bytes:
        """Fetch the entry at ``index`` and prove it is in ``signed``'s tree.

        Raises:
            VerificationError: the entry or proof does not verify.
        """
        size, root = signed.checkpoint.size, signed.checkpoint.root
        entry = self.entry(index, size)
        merkle.verify_inclusion(merkle.leaf_hash(entry), index, size,
                                self.inclusion_proof(index, size), root)
        return entry

    # -- full verification ------------------------------------------------------
    def rebuild(self, signed: SignedCheckpoint, *, start: TileFrontier | None = None,
                on_entries: Callable[[int, list[bytes]], None] | None = None,
                progress: Callable[[int], None] | None = None) -> RebuildResult:
        """Rebuild the tree of ``signed`` from its entry bundles and compare.

        Every hash tile the entries produce must equal the published one, and
        the root must equal the checkpoint's.  ``start`` continues from an
        edge proven earlier (an auditor's saved state) so only new bundles are
        read; ``on_entries(first_index, entries)`` sees every new entry.

        Raises:
            VerificationError: naming the first tile, bundle or index that differs.
        """
        size = signed.checkpoint.size
        frontier = _copy(start) if start is not None else TileFrontier()
        if frontier.size > size:
            raise VerificationError(f"log shrank from {frontier.size} to {size}",
                                    code="log_shrank")
        for first, entries in self._bundles_after(frontier, size):
            if on_entries is not None:
                on_entries(first, entries)
            hashes = [merkle.leaf_hash(e) for e in entries]
            for ref, data in frontier.append(entries, hashes):
                if not ref.is_bundle:
                    self._compare(ref, data)
            if progress is not None:
                progress(frontier.size)
        for ref, data in frontier.partial_tiles():
            self._compare(ref, data)
        root = frontier.root()
        if root != signed.checkpoint.root:
            raise VerificationError(
                f"entries 0..{size - 1} do not reproduce the checkpoint root of size {size}",
                code="root_mismatch")
        return RebuildResult(size, root, frontier)

    def _bundles_after(self, frontier: TileFrontier, size: int
                       ) -> Iterator[tuple[int, list[bytes]]]:
        index, have = divmod(frontier.size, TILE_WIDTH)
        while index * TILE_WIDTH < size:
            width = min(TILE_WIDTH, size - index * TILE_WIDTH)
            entries = self.bundle(index, width)
            if have:
                known = [merkle.leaf_hash(e) for e in entries[:have]]
                if known != frontier.levels[0][:have]:
                    raise VerificationError(
                        f"{TileRef(ENTRIES, index, width).path} rewrote entries verified "
                        f"before (indexes {index * TILE_WIDTH}..{index * TILE_WIDTH + have - 1})",
                        code="entries_rewritten")
            yield index * TILE_WIDTH + have, entries[have:]
            index, have = index + 1, 0

    def _compare(self, ref: TileRef, data: bytes) -> None:
        published = self._fetch(ref)
        if published != data:
            first_bad = next((i for i in range(0, min(len(published), len(data)),
                                                merkle.HASH_SIZE)
                              if published[i:i + 32] != data[i:i + 32]), None)
            where = "" if first_bad is None else \
                f" (first differing hash covers index {_covered(ref, first_bad // 32)})"
            raise VerificationError(f"{ref.path} does not match the entries{where}",
                                    code="tile_mismatch")


def _covered(ref: TileRef, pos: int) -> int:
    return (ref.index * TILE_WIDTH + pos) << (TILE_HEIGHT * ref.level)


def _copy(frontier: TileFrontier) -> TileFrontier:
    return TileFrontier(frontier.size, [list(x) for x in frontier.levels], list(frontier.bundle))
