"""The log side of witnessing: gather a quorum of cosignatures before publishing.

:class:`WitnessQuorum` is the sequencer's :class:`~bordergate.tlog.sequencer.
CheckpointWitnessing`: for each new log-signed checkpoint it asks every
configured C2SP tlog-witness at once (one thread per witness, httpx with
timeouts), each with a consistency proof from the size that witness last
cosigned (0 and an empty proof at first).  A witness answering 409 with its
own size gets the checkpoint again with a proof from that size.  The
cosignatures are merged into the note, and the note is returned only once the
configured quorum cosigned; otherwise :class:`~bordergate.errors.Unavailable`
is raised and the sequencer publishes nothing (promise 5: a checkpoint is
witnessed before anyone sees it).  A quorum of 0 is for development only: the
checkpoint is published with whatever cosignatures arrived (maybe none), and a
warning is logged; audits flag such checkpoints.

No single witness can hold the others up: each witness has its own worker
thread, a request must be answered whole within ``timeout`` (the answer is
capped in size, :mod:`bordergate.tlog.witness_client`), and a witness still
busy with an earlier request is not asked again until it is done (it counts as
not cosigning).  So a witness that never finishes its answer, or trickles it,
costs the log that witness's cosignature only, never the quorum of the others.
Nor is a witness's clock trusted: an auditor takes a checkpoint for the log's
current state only if its quorum cosigned it recently (``audit.witness_check``),
so a cosignature stamped more than :data:`MAX_CLOCK_SKEW` seconds away from the
log's clock does not end the wait for the quorum: the log waits (up to
``timeout``) for witnesses whose time is right.  Only when the witnesses that
answered cannot make the quorum otherwise is such a cosignature counted, with
a warning naming the witness (``witness_clock_skew``): the checkpoint is then
witnessed but audits will find it stale, and the reason is in the log's output.

This module must never sign checkpoints or decide what the log contains; it
only carries checkpoints to witnesses and their cosignatures back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import httpx

from bordergate.errors import BordergateError, ConfigError, Unavailable, VerificationError
from bordergate.tlog.checkpoint import Checkpoint
from bordergate.tlog.cosignature import CosignatureVerifier, cosignature_timestamp
from bordergate.tlog.note import NoteSignature, add_signatures
from bordergate.tlog.witness_client import (
    Cosigned,
    StaleSize,
    add_checkpoint_url,
    request_cosignature_sync,
)

__all__ = ["MAX_CLOCK_SKEW", "WitnessEndpoint", "WitnessQuorum", "parse_witness_option",
           "witness_endpoint"]

log = logging.getLogger(__name__)

_MAX_RESENDS = 3

MAX_CLOCK_SKEW = 120
"""Seconds a cosignature's time may differ from the log's clock and still count.

Well inside the auditor's window (``audit.witness_check``: up to 300 s ahead,
``max_checkpoint_age_s`` behind), so a counted cosignature is fresh for an
auditor whose clock is right to within a few minutes."""


@dataclass(frozen=True)
class WitnessEndpoint:
    """One witness: its add-checkpoint URL and its cosignature/v1 key."""

    url: str
    verifier: CosignatureVerifier

    @property
    def name(self) -> str:
        return self.verifier.name


def witness_endpoint(url: str, vkey: str) -> WitnessEndpoint:
    """A witness from its URL (prefix or add-checkpoint URL) and verifier key.

    Raises:
        ConfigError: not an http(s) URL, or not a cosignature/v1 key.
    """
    try:
        verifier = CosignatureVerifier.from_key_string(vkey)
    except VerificationError as exc:
        raise ConfigError(f"witness {url}: {exc}", code="invalid_witness") from exc
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"witness {url!r}: the URL must be http(s)", code="invalid_witness")
    if not url.rstrip("/").endswith("/add-checkpoint"):
        url = add_checkpoint_url(url)
    return WitnessEndpoint(url, verifier)


def parse_witness_option(value: str) -> WitnessEndpoint:
    """Parse ``URL=VKEY`` (``URL`` is the witness's prefix or its add-checkpoint URL).

    The split is at the first ``=`` whose right side is a cosignature/v1 key,
    so URLs with query strings still work.

    Raises:
        ConfigError: no ``=``, not an http(s) URL, or no valid witness key.
    """
    problem = "no '=' between URL and VKEY"
    for pos, char in enumerate(value):
        if char != "=":
            continue
        url, vkey = value[:pos], value[pos + 1:]
        try:
            CosignatureVerifier.from_key_string(vkey)
        except VerificationError as exc:
            problem = str(exc)
            continue
        return witness_endpoint(url, vkey)
    raise ConfigError(f"--witness must be URL=VKEY, got {value!r}: {problem}",
                      code="invalid_witness")


class WitnessQuorum:
    """Collects witness cosignatures for the sequencer (see the module docstring)."""

    def __init__(self, witnesses: Sequence[WitnessEndpoint], quorum: int, *,
                 timeout: float = 10.0, grace: float = 0.5,
                 client: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """Configure the witnesses and how many must cosign.

        Args:
            witnesses: the witnesses to ask (distinct keys).
            quorum: cosignatures required before publication (0: development).
            timeout: the longest wait for the witnesses of one checkpoint.
            grace: once the quorum is met, how long to wait for the others.
            client: the HTTP client to share (default: one with ``timeout``).
            clock: the log's clock (POSIX seconds), to check cosignature times by.

        Raises:
            ConfigError: a quorum outside ``0..len(witnesses)`` or repeated keys.
        """
        if not 0 <= quorum <= len(witnesses):
            raise ConfigError(f"quorum {quorum} needs 0..{len(witnesses)} witnesses",
                              code="invalid_quorum")
        keys = {(w.verifier.name, w.verifier.key_id) for w in witnesses}
        if len(keys) != len(witnesses):
            raise ConfigError("a witness key is configured twice", code="invalid_witness")
        self.witnesses = tuple(witnesses)
        self.quorum = quorum
        self.timeout = timeout
        self.grace = grace
        self.clock = clock
        # plain http never uses TLS: no certificate store to load (~70 ms of CPU a client)
        self._client = client or httpx.Client(
            timeout=timeout, verify=any(w.url.startswith("https://") for w in witnesses))
        # one worker per witness: a witness hanging on to its thread holds up no other
        self._workers = {w.url: ThreadPoolExecutor(max_workers=1,
                                                   thread_name_prefix="tlog-witness")
                         for w in witnesses}
        self._busy: dict[str, Future[tuple[NoteSignature, ...]]] = {}
        self._sizes: dict[str, int] = {}  # witness URL -> size it last cosigned
        self._prove_lock = threading.Lock()
        self._warned = False
        self.last_failures: dict[str, str] = {}

    def close(self) -> None:
        """Stop the worker threads and the HTTP client."""
        for worker in self._workers.values():
            worker.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def cosigned_size(self, witness: WitnessEndpoint) -> int:
        """The size ``witness`` last cosigned, as far as this log knows (0 if unknown)."""
        return self._sizes.get(witness.url, 0)

    def cosign(self, note: bytes, checkpoint: Checkpoint,
               prove: Callable[[int], list[bytes]]) -> bytes:
        """Return ``note`` with the witnesses' cosignatures merged in.

        Raises:
            Unavailable: ``witness_quorum_unavailable``: fewer than the quorum
                cosigned in time (the reasons per witness are in the message).
        """
        if self.quorum == 0 and not self._warned:
            log.warning("log %s publishes checkpoints without a witness quorum "
                        "(quorum 0: development only)", checkpoint.origin)
            self._warned = True
        if not self.witnesses:
            return note

        def locked_prove(old_size: int) -> list[bytes]:
            with self._prove_lock:
                return prove(old_size)

        deadline = time.monotonic() + self.timeout
        futures: dict[Future[tuple[NoteSignature, ...]], WitnessEndpoint] = {}
        busy: dict[str, str] = {}
        for w in self.witnesses:
            earlier = self._busy.get(w.url)
            if earlier is not None and not earlier.done():
                busy[w.name] = "still answering an earlier request"
                continue
            future = self._workers[w.url].submit(self._ask, w, note, checkpoint,
                                                 locked_prove, deadline)
            self._busy[w.url] = future
            futures[future] = w
        cosigned, failures, skewed = self._gather(futures)
        failures.update(busy)
        if len(cosigned) - len(skewed) < self.quorum:
            for name, why in skewed.items():  # counted, but said: audits will find it stale
                log.warning("witness %s cosigned size %d, but %s", name, checkpoint.size, why)
            failures.update(skewed)
        self.last_failures = failures
        if len(cosigned) < self.quorum:
            detail = "; ".join(f"{name}: {why}" for name, why in failures.items()) or "timeout"
            raise Unavailable(
                f"checkpoint {checkpoint.size} of {checkpoint.origin}: {len(cosigned)} of "
                f"{self.quorum} required witness cosignatures ({detail})",
                code="witness_quorum_unavailable")
        for name, why in failures.items():
            if name not in skewed:
                log.warning("witness %s did not cosign size %d: %s", name, checkpoint.size, why)
        ordered = [sig for w in self.witnesses for sig in cosigned.get(w.url, ())]
        return add_signatures(note, ordered)

    def _gather(self, futures: dict[Future[tuple[NoteSignature, ...]], WitnessEndpoint]
                ) -> tuple[dict[str, tuple[NoteSignature, ...]], dict[str, str], dict[str, str]]:
        """The cosignatures by witness URL, the failures and the clock-skewed cosigners
        by witness name (see the module docstring)."""
        cosigned: dict[str, tuple[NoteSignature, ...]] = {}
        failures: dict[str, str] = {}
        skewed: dict[str, str] = {}
        now = time.monotonic()
        # quorum 0 is met at once: reachable witnesses get the grace period, no more
        deadline = now + (self.timeout if self.quorum else min(self.timeout, self.grace))
        pending = set(futures)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            done, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
            for fut in done:
                witness = futures[fut]
                try:
                    cosigned[witness.url] = fut.result()
                except BordergateError as exc:
                    failures[witness.name] = f"[{exc.code}] {exc}"
                    continue
                except Exception as exc:  # a witness must never take the log down
                    failures[witness.name] = f"[{type(exc).__name__}] {exc}"
                    continue
                skew = self._skew(cosigned[witness.url])
                if skew > MAX_CLOCK_SKEW:
                    skewed[witness.name] = (
                        f"[witness_clock_skew] its cosignature is stamped {skew:.0f} s away "
                        f"from the log's clock (at most {MAX_CLOCK_SKEW} s): audits will not "
                        "take it as fresh")
            # the quorum is met by cosignatures an auditor will take as fresh
            if len(cosigned) - len(skewed) >= self.quorum:
                deadline = min(deadline, time.monotonic() + self.grace)
        for fut in pending:
            failures[futures[fut].name] = "no answer in time"
        return cosigned, failures, skewed

    def _ask(self, witness: WitnessEndpoint, note: bytes, checkpoint: Checkpoint,
             prove: Callable[[int], list[bytes]], deadline: float
             ) -> tuple[NoteSignature, ...]:
        """Ask one witness, re-sending after 409 with its size, all by ``deadline``."""
        old = self._sizes.get(witness.url, 0)
        if old > checkpoint.size:
            old = 0  # our memory is from another log run; let the witness say
        for _attempt in range(_MAX_RESENDS):
            result = request_cosignature_sync(self._client, witness.url, note, old,
                                              prove(old), verifier=witness.verifier,
                                              deadline=deadline)
            if isinstance(result, Cosigned):
                self._sizes[witness.url] = max(checkpoint.size, self._sizes.get(witness.url, 0))
                return result.signatures
            assert isinstance(result, StaleSize)
            if result.size > checkpoint.size:
                raise VerificationError(
                    f"witness {witness.name} cosigned size {result.size} of this log, larger "
                    f"than {checkpoint.size}: it saw another history", code="witness_ahead")
            if result.size == old:
                break
            old = result.size
        raise Unavailable(f"witness {witness.name} kept changing its size",
                          code="witness_unavailable")

    def _skew(self, signatures: Sequence[NoteSignature]) -> float:
        """How far (seconds) the furthest of a witness's cosignature times is from the
        log's clock."""
        now = self.clock()
        return max((abs(cosignature_timestamp(s) - now) for s in signatures), default=0.0)
