"""Holding a receipt against the published log: what a monitor does with a receipt.

:func:`verify_in_log` takes a receipt whose signature has been checked
(:func:`bordergate.receipts.verify_receipt_signature`) and a verifying
:class:`~bordergate.tlog.client.LogClient` of the log it names, and proves or
refutes it: the checkpoint verifies (log key, and the witness quorum the
client was built with), the entry at the receipt's index is included in it
(an RFC 9162 inclusion proof), its leaf hash is the one the receipt signed,
the receipt's key was registered by a ``gateway-start`` entry of that gateway
before the entry, and the entry allows what the receipt says was released
(:func:`bordergate.receipts.entry_discrepancies`), including (format v2) that
the receipt names the entry's own token id and time, so that it cannot cite
the entry of another request.

Who may register a key: in a log written through a sequencer service every
entry names the append credential the log operator accepted it from
(``appender``, :mod:`bordergate.appender`).  There a ``gateway-start`` counts
as a registration only if its credential has the gateway role: by the
caller's table of appender roles (the auditor's ``appenders``, the role rules
of :mod:`bordergate.audit.rules.appenders`), or, without one, if it is the
credential that appended the receipt's entry (each gateway worker logs its own
start with its own credential).  A start written with any other credential
(the key service's, the custodian's) registers nothing and is noted, as is a
gateway that registered several receipt keys.  Entries without the member
(an in-process sequencer, version 1) cannot be attributed and count as before.

Because the receipt is signed by the gateway's own registered key and the
entry is in a log the gateway cannot rewrite unseen (witnesses, promise 5),
any discrepancy is a proof that the gateway released something its log does
not record: a lying denial or an under-reported ``released`` list (issue 12).

This module reads the log through the verifying client only; it must never
write to a log or trust an entry it has not proved included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bordergate.audit.rules.appenders import ROLE_TYPES
from bordergate.entries import Entry, parse_entry
from bordergate.errors import Unavailable, VerificationError
from bordergate.receipts import Receipt, entry_discrepancies
from bordergate.tlog import merkle
from bordergate.tlog.checkpoint import SignedCheckpoint
from bordergate.tlog.client import LogClient
from bordergate.tlog.tiles import TILE_WIDTH

__all__ = ["ReceiptVerdict", "verify_in_log"]

_START_MARK = b'"type":"gateway-start"'


@dataclass
class ReceiptVerdict:
    """What holding a receipt against the log showed.

    Attributes:
        receipt: the receipt.
        checkpoint: the verified checkpoint the entry was proved against.
        entry: the proved entry, parsed (None when it could not be).
        registered_at: index of the ``gateway-start`` entry that registered the
            receipt's key, or None.
        registered_by: the append credential of that entry (None: it names none).
        discrepancies: every way the log contradicts the receipt (empty: consistent).
        notes: what the caller should know that is no contradiction (a
            ``gateway-start`` of another credential than the gateway's, taken
            for no registration; several keys registered by the gateway).
    """

    receipt: Receipt
    checkpoint: SignedCheckpoint
    entry: Entry | None = None
    registered_at: int | None = None
    registered_by: str | None = None
    discrepancies: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        """Whether the log records exactly what the receipt says was released."""
        return not self.discrepancies


def verify_in_log(receipt: Receipt, client: LogClient, *, key_trusted: bool = False,
                  appenders: Mapping[str, str] | None = None) -> ReceiptVerdict:
    """Prove the receipt's entry in the log and compare it with the receipt.

    ``key_trusted``: the receipt's key is one the caller already holds as the
    gateway's (the deployment file's ``receipts.public_keys``).  Then a log that
    does not register it is one more discrepancy; otherwise the registration in
    the log is what ties the key to the gateway, and without it nothing is proved.
    ``appenders``: append credential id -> role (the auditor's table); a
    ``gateway-start`` naming a credential registers a key only if that
    credential's role may write one (the gateway role), or, without a table,
    only if it appended the receipt's entry too.

    Raises:
        VerificationError: ``receipt_key_unregistered`` (an untrusted key that no
            ``gateway-start`` of the gateway registered before the entry: the
            receipt may not be the gateway's at all);
            the log does not verify (signature, witness quorum, inclusion proof),
            or the receipt names another log.
        Unavailable: the log cannot be read, or its checkpoint does not cover
            the receipt's entry yet (``receipt_entry_not_published``).
        NotFound: the log has no checkpoint.
    """
    if receipt.origin != client.verifier.name:
        raise VerificationError(f"the receipt names log {receipt.origin!r}, not "
                                f"{client.verifier.name!r}", code="receipt_wrong_log")
    signed = client.checkpoint(covering=receipt.index + 1)
    size = signed.checkpoint.size
    if receipt.index >= size:
        raise Unavailable(f"the log's checkpoint (size {size}) does not cover entry "
                          f"{receipt.index} yet; retry once it is published",
                          code="receipt_entry_not_published")
    raw = client.prove_entry(receipt.index, signed)
    verdict = ReceiptVerdict(receipt, signed)
    if merkle.leaf_hash(raw) != receipt.leaf_hash:
        verdict.discrepancies.append(
            f"the receipt's leaf hash is not that of entry {receipt.index} of the log: the "
            "gateway signed a receipt for an entry the log does not hold")
        return verdict
    try:
        verdict.entry = parse_entry(raw)
    except VerificationError as exc:
        verdict.discrepancies.append(f"entry {receipt.index} does not parse: {exc}")
        return verdict
    entry_appender = verdict.entry.body.get("appender")
    _registration(client, verdict, _GatewayCredential(
        appenders, entry_appender if isinstance(entry_appender, str) else None))
    if verdict.registered_at is None and not key_trusted:
        raise VerificationError(
            f"no gateway-start entry of gateway {receipt.gateway!r} before entry "
            f"{receipt.index} registers the receipt key {receipt.key}: nothing ties the "
            "receipt to the gateway (give its registered key with --gateway-key)"
            + "".join(f"; {note}" for note in verdict.notes),
            code="receipt_key_unregistered")
    if verdict.registered_at is None:
        verdict.discrepancies.append(
            f"no gateway-start entry of gateway {receipt.gateway!r} before entry "
            f"{receipt.index} registers the receipt key {receipt.key}")
    if not receipt.bound:
        verdict.notes.append(
            f"an old-format receipt ({receipt.format}) names no token id or time: its "
            "request binding could not be checked (the gateway could have cited another "
            "request's entry with the same fields)")
    verdict.discrepancies += entry_discrepancies(receipt, verdict.entry.body)
    return verdict


@dataclass(frozen=True)
class _GatewayCredential:
    """Which append credentials may register the gateway's receipt key."""

    roles: Mapping[str, str] | None
    entry_appender: str | None

    def allows(self, appender: object) -> bool:
        if appender is None:
            return True  # not attributed (an in-process sequencer, a version 1 entry)
        if not isinstance(appender, str):
            return False
        if self.roles:
            return "gateway-start" in ROLE_TYPES.get(self.roles.get(appender, ""), ())
        return self.entry_appender is None or appender == self.entry_appender


def _registration(client: LogClient, verdict: ReceiptVerdict,
                  gateway: _GatewayCredential) -> None:
    """Set ``verdict.registered_at``/``registered_by`` to the latest ``gateway-start``
    before the receipt's entry that names its gateway and key and whose append
    credential may register it (the one found is proved included in the
    checkpoint), and note starts of other credentials and other keys of the
    gateway.  Reads every entry bundle up to the receipt's entry, backwards.

    Raises:
        VerificationError: the entry found does not prove included.
    """
    receipt, signed = verdict.receipt, verdict.checkpoint
    size = signed.checkpoint.size
    keys: set[str] = set()
    for n in range(receipt.index // TILE_WIDTH, -1, -1):
        bundle = client.bundle(n, min(TILE_WIDTH, size - n * TILE_WIDTH))
        for offset in range(len(bundle) - 1, -1, -1):
            index, raw = n * TILE_WIDTH + offset, bundle[offset]
            if index >= receipt.index or _START_MARK not in raw:
                continue
            try:
                entry = parse_entry(raw)
            except VerificationError:
                continue
            if entry.type != "gateway-start" or entry.body.get("gateway") != receipt.gateway:
                continue
            key, appender = entry.body.get("receipt_key"), entry.body.get("appender")
            if not gateway.allows(appender):
                verdict.notes.append(
                    f"entry {index}, a gateway-start of gateway {receipt.gateway!r}, was "
                    f"appended with credential {str(appender)[:64]!r}, not the gateway's: "
                    "it registers no key")
                continue
            if isinstance(key, str):
                keys.add(key)
            if key == receipt.key and verdict.registered_at is None:
                if client.prove_entry(index, signed) != raw:
                    raise VerificationError(f"entry {index} differs from its proof",
                                            code="entry_mismatch")
                verdict.registered_at = index
                verdict.registered_by = appender if isinstance(appender, str) else None
    if len(keys) > 1:
        verdict.notes.append(f"gateway {receipt.gateway!r} registered {len(keys)} receipt "
                             f"keys before entry {receipt.index}: {sorted(keys)}")
