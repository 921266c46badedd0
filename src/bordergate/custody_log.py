"""The key custodian's record in the jurisdiction's log: KEK events as ``key-event`` entries
(and the custodian's ``token-revoke`` entries, ``gateway.revocations``).

Destroying a KEK version is what makes erasures final (promise 8): every copy
of every data key wrapped under it, in backups and old copies of the store,
stops opening.  An auditor must see it, so ``bordergate keys`` appends its KEK
events (``kek-created``, ``kek-rotated``, ``kek-destroyed``) to the
jurisdiction's log as ``key-event`` entries, built by the same function as the
gateway's (:func:`bordergate.gateway.decisions.key_event_entry`), with
``"by": "custodian"`` where a gateway's say ``"gateway": <code>``.

They go through the log's single writer, as the gateway's entries do:

* the log's sequencer service when the deployment names one
  (``log.sequencer``: the one the gateway workers send to), so the gateway
  keeps serving; the custodian appends with its own credential
  (``log.sequencer.custodian_credential_file``), and each entry names it;
* otherwise the log storage itself: the command becomes the writer for a
  moment and is refused with ``log_writer_busy`` while a gateway (or a
  sequencer) holds the log.

:func:`open_custody_log` reaches the writer *before* the caller changes any
key, so that a busy or unreachable log refuses the operation instead of
leaving it unrecorded.  Each entry is appended after its event happened and
waits until a checkpoint covers it: the log never claims a destruction that
did not take place.

This module must never hold or log key material, nor a subject id (KEK
events have none).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bordergate.config import Jurisdiction
from bordergate.errors import ConfigError, Conflict
from bordergate.keys.events import KeyEvent
from bordergate.log_witnessing import log_witnessing

__all__ = ["CustodyLog", "open_custody_log"]

#: Seconds to wait for a checkpoint covering the custodian's entries.
PUBLISH_TIMEOUT = 30.0


def _no_subject(raw: str) -> str:
    raise AssertionError("a KEK event carries no subject")


class CustodyLog:
    """Appends a custodian's KEK events to one jurisdiction's log, through its writer."""

    def __init__(self, origin: str, append: Callable[[list[bytes]], int]) -> None:
        """Bind the log's origin and a function that appends durably and publishes."""
        self.origin = origin
        self._append = append

    def record(self, events: Sequence[KeyEvent]) -> int:
        """Append one ``key-event`` entry per event; the index of the first.

        Raises:
            ValueError: an event names a subject (only KEK events belong here).
            Unavailable: the log could not be written or not published in time.
        """
        from bordergate.gateway.decisions import key_event_entry

        if any(e.subject is not None for e in events):
            raise ValueError("the custodian logs KEK events only")
        return self._append([key_event_entry(e, _no_subject, e.time, {"by": "custodian"})
                             for e in events])

    def append(self, entries: list[bytes]) -> int:
        """Append other custodian entries (``token-revoke``); the index of the first.

        Raises:
            Unavailable: the log could not be written or not published in time.
        """
        return self._append(entries)


@contextmanager
def open_custody_log(jurisdiction: Jurisdiction, credential_file: Path | None = None
                     ) -> Iterator[CustodyLog]:
    """Reach the log's single writer of ``jurisdiction`` (see the module docstring).

    Through a sequencer service the custodian appends with its own credential:
    ``credential_file``, default ``log.sequencer.custodian_credential_file``.

    Raises:
        ConfigError: the log key, verifier key or credential is unreadable or
            not named (``custodian_credential_missing``), or the key signs for
            another origin.
        Conflict: ``log_writer_busy``: a gateway or sequencer holds the log.
        Unavailable: the log storage or the sequencer service cannot be reached,
            or the service refuses the credential.
    """
    from bordergate.log_access import log_signer

    log = jurisdiction.log
    if log.sequencer is not None:
        path = credential_file or log.sequencer.custodian_credential_file
        if path is None:
            raise ConfigError(f"jurisdictions.{jurisdiction.code}.log.sequencer names no "
                              "custodian_credential_file (or pass --credential-file)",
                              code="custodian_credential_missing")
        yield _through_service(jurisdiction, path)
        return
    from bordergate.tlog.sequencer import Sequencer
    from bordergate.tlog.storage import open_storage

    signer = log_signer(jurisdiction)
    storage = open_storage(log.storage)
    witnessing = log_witnessing(log)
    sequencer = Sequencer(storage, signer, witnessing=witnessing)
    try:
        sequencer.start()
    except Conflict as e:
        storage.close()
        if witnessing is not None:
            witnessing.close()
        raise Conflict(f"the log of {jurisdiction.code} has another writer ({e}): stop its "
                       "gateway, or name its sequencer service in the deployment",
                       code="log_writer_busy") from None
    except BaseException:
        storage.close()
        if witnessing is not None:
            witnessing.close()
        raise

    def append(entries: list[bytes]) -> int:
        first = sequencer.append_many(entries)
        sequencer.publish(PUBLISH_TIMEOUT)
        return first

    try:
        yield CustodyLog(log.origin, append)
    finally:
        sequencer.close()
        storage.close()
        if witnessing is not None:
            witnessing.close()


def _through_service(jurisdiction: Jurisdiction, credential_file: Path) -> CustodyLog:
    from bordergate.log_access import remote_appender

    remote_appender(jurisdiction, credential_file)  # read the files before any key changes

    async def send(entries: list[bytes]) -> int:
        service = remote_appender(jurisdiction, credential_file)
        try:
            first = await service.append_many(entries) if entries else -1
            await service.publish(PUBLISH_TIMEOUT)
            return first
        finally:
            await service.aclose()

    asyncio.run(send([]))  # reach the writer (and check the credential) before any key changes
    return CustodyLog(jurisdiction.log.origin, lambda entries: asyncio.run(send(entries)))

