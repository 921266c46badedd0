"""Holding a receipt against the published log: what a monitor does with a receipt.

:func:`verify_in_log` takes a receipt whose signature has been checked
(:func:`bordergate.receipts.verify_receipt_signature`) and a verifying
:class:`~bordergate.tlog.client.LogClient` of the log it names, and proves or
refutes it: the checkpoint verifies (log key, and the witness quorum the
client was built with), the entry at the receipt's index is included in it
(an RFC 9162 inclusion proof), its leaf hash is the one the receipt signed,
the receipt's key was registered by a ``gateway-start`` entry of that gateway
before the entry, and the entry allows what the receipt says was released
(:func:`bordergate.receipts.entry_discrepancies`).

Because the receipt is signed by the gateway's own registered key and the
entry is in a log the gateway cannot rewrite unseen (witnesses, promise 5),
any discrepancy is a proof that the gateway released something its log does
not record: a lying denial or an under-reported ``released`` list (issue 12).

This module reads the log through the verifying client only; it must never
write to a log or trust an entry it has not proved included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
        discrepancies: every way the log contradicts the receipt (empty: consistent).
    """

    receipt: Receipt
    checkpoint: SignedCheckpoint
    entry: Entry | None = None
    registered_at: int | None = None
    discrepancies: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        """Whether the log records exactly what the receipt says was released."""
        return not self.discrepancies


def verify_in_log(receipt: Receipt, client: LogClient, *,
                  key_trusted: bool = False) -> ReceiptVerdict:
    """Prove the receipt's entry in the log and compare it with the receipt.

    ``key_trusted``: the receipt's key is one the caller already holds as the
    gateway's (the deployment file's ``receipts.public_keys``).  Then a log that
    does not register it is one more discrepancy; otherwise the registration in
    the log is what ties the key to the gateway, and without it nothing is proved.

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
    verdict.registered_at = _registration(client, receipt, signed)
    if verdict.registered_at is None and not key_trusted:
        raise VerificationError(
            f"no gateway-start entry of gateway {receipt.gateway!r} before entry "
            f"{receipt.index} registers the receipt key {receipt.key}: nothing ties the "
            "receipt to the gateway (give its registered key with --gateway-key)",
            code="receipt_key_unregistered")
    if verdict.registered_at is None:
        verdict.discrepancies.append(
            f"no gateway-start entry of gateway {receipt.gateway!r} before entry "
            f"{receipt.index} registers the receipt key {receipt.key}")
    verdict.discrepancies += entry_discrepancies(receipt, verdict.entry.body)
    return verdict


def _registration(client: LogClient, receipt: Receipt, signed: SignedCheckpoint
                  ) -> int | None:
    """The index of the latest ``gateway-start`` before the receipt's entry that names
    its gateway and key (read backwards, one entry bundle at a time; the one found is
    proved included in ``signed``).

    Raises:
        VerificationError: the entry found does not prove included.
    """
    size = signed.checkpoint.size
    last_bundle = receipt.index // TILE_WIDTH
    for n in range(last_bundle, -1, -1):
        width = min(TILE_WIDTH, size - n * TILE_WIDTH)
        bundle = client.bundle(n, width)
        for offset in range(len(bundle) - 1, -1, -1):
            index = n * TILE_WIDTH + offset
            raw = bundle[offset]
            if index >= receipt.index or _START_MARK not in raw:
                continue
            try:
                entry = parse_entry(raw)
            except VerificationError:
                continue
            if (entry.type == "gateway-start" and entry.body.get("gateway") == receipt.gateway
                    and entry.body.get("receipt_key") == receipt.key):
                if client.prove_entry(index, signed) != raw:
                    raise VerificationError(f"entry {index} differs from its proof",
                                            code="entry_mismatch")
                return index
    return None
