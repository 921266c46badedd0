"""Readiness of one gateway (``/readyz``) and its recovery from failing closed.

Liveness and readiness are separate questions.  ``/healthz`` answers "is the
process serving HTTP" and stays 200 while the gateway fails closed, so that
an orchestrator does not kill a gateway that only waits for its disk.
``/readyz`` answers "would a read be logged and answered now", from four
checks, each ``ok``, ``degraded`` or ``failing`` with a stable code and a
reason:

* ``log``: the log takes durable writes (its sequencer has not failed);
* ``sequencer``: how many durable entries no published checkpoint covers yet
  (witness lag, checkpoint age).  A lag only marks the gateway ``degraded``:
  reads need durability (promise 3), not cosignatures (promise 5).  Past
  ``Limits.readiness_max_backlog`` entries it fails, because a log that
  cannot publish for that long needs an operator;
* ``store``: the record store answers a point lookup;
* ``keys``: the key backend names its current KEK version.

:func:`recover_while_serving` is the way out of failing closed without a
restart: while the log's sequencer has failed it tries, once per interval, to
replace it by one recovered from storage alone (``Sequencer.reopen``: the
published checkpoint re-verified against its tiles, durable bundles and
write-ahead records replayed, then a durable write), and appends keep failing
with 503 until that succeeded.

This module must never release data, append to the log, or clear a failure
without that durable re-check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bordergate.errors import BordergateError, NotFound
from bordergate.gateway.service import Gateway, SequencerLog
from bordergate.tlog.recovery import keep_recovering

__all__ = ["Check", "Readiness", "recover_while_serving"]


_PROBE_RECORD = "readiness-probe"  # never a record id: the lookup must find nothing
STALE_AFTER = 10.0                 # seconds with unpublished entries before "degraded"


@dataclass(frozen=True)
class Check:
    """One readiness check: ``ok``, ``degraded`` or ``failing``, with a code and reason."""

    status: str
    code: str
    reason: str
    detail: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "reason": self.reason,
                **(self.detail or {})}


def _ok(reason: str, **detail: Any) -> Check:
    return Check("ok", "ok", reason, detail or None)


class Readiness:
    """The readiness checks of one gateway (see the module docstring)."""

    def __init__(self, gateway: Gateway, *, max_backlog: int,
                 stale_after: float = STALE_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gateway = gateway
        self.max_backlog = max_backlog
        self.stale_after = stale_after
        self.clock = clock
        self._published: tuple[int, float] = (-1, clock())

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """Whether the gateway is ready, and the ``/readyz`` body.

        The body's ``status`` is ``ready``, ``degraded`` (ready, but a check
        warns) or ``failing``; ``code`` and ``reason`` name the first failing
        (else degraded) check.
        """
        checks = {"log": self._log(), "sequencer": self._sequencer(),
                  "store": await self._store(), "keys": await self._keys()}
        failing = [c for c in checks.values() if c.status == "failing"]
        degraded = [c for c in checks.values() if c.status == "degraded"]
        status = "failing" if failing else "degraded" if degraded else "ready"
        first = (failing or degraded or [Check("ok", "ok", "ready")])[0]
        return not failing, {
            "status": status, "code": first.code, "reason": first.reason,
            "jurisdiction": self.gateway.jurisdiction, "origin": self.gateway.origin,
            "checks": {name: c.to_json() for name, c in checks.items()}}

    def _log(self) -> Check:
        appender = self.gateway.log
        failure = appender.failure() if isinstance(appender, SequencerLog) else None
        if failure is not None:
            return Check("failing", "log_unwritable",
                         f"failing closed: the log refused a write ({failure}); "
                         "recovering once it takes durable writes again")
        return _ok("the log takes durable writes")

    def _sequencer(self) -> Check:
        appender = self.gateway.log
        signed = appender.checkpoint()
        size = signed.checkpoint.size if signed is not None else 0
        now = self.clock()
        if size != self._published[0]:
            self._published = (size, now)
        if not isinstance(appender, SequencerLog):
            return _ok("entries go to the log's sequencer service", checkpoint_size=size)
        backlog = appender.backlog()
        age = round(now - self._published[1], 1)
        detail = {"checkpoint_size": size, "unpublished": backlog, "unpublished_for_s": age}
        if backlog > self.max_backlog:
            return Check("failing", "checkpoint_backlog",
                         f"{backlog} durable entries not covered by a published checkpoint "
                         f"(more than {self.max_backlog}): witnesses or publication stuck",
                         detail)
        if backlog > 0 and age > self.stale_after:
            return Check("degraded", "checkpoint_stale",
                         f"{backlog} durable entries unpublished for {age} s "
                         "(waiting for witness cosignatures?)", detail)
        return _ok("checkpoints are published", **detail)

    async def _store(self) -> Check:
        gw = self.gateway
        collection = next(iter(gw.schema.collections))
        try:
            await asyncio.to_thread(gw.vault.store.owner, collection, _PROBE_RECORD)
        except NotFound:
            return _ok("the record store answers")
        except BordergateError as exc:
            return Check("failing", exc.code, f"the record store fails: {exc}")
        return _ok("the record store answers")

    async def _keys(self) -> Check:
        service = self.gateway.key_service
        if service is not None:  # the KEKs are the key service's (issue 13)
            try:
                version = await service.health()
            except BordergateError as exc:
                return Check("failing", exc.code, f"the key service fails: {exc}")
            return _ok("the key service answers", kek_version=version)
        try:
            version = await asyncio.to_thread(self.gateway.vault.keyring.current_version)
        except BordergateError as exc:
            return Check("failing", exc.code, f"the key backend fails: {exc}")
        return _ok("the key backend answers", kek_version=version)


async def recover_while_serving(gateway: Gateway, interval: float = 1.0) -> None:
    """Until cancelled: whenever the log's sequencer has failed, try to recover it
    (``SequencerLog.recover``, the durable re-check) once per ``interval`` seconds."""
    appender = gateway.log
    if not isinstance(appender, SequencerLog):
        return  # a sequencer service recovers (or not) in its own process
    await keep_recovering(appender.recover, interval, f"log of {gateway.jurisdiction}")
