"""An export grouped by a sealed field, through the jurisdiction's key service.

A gateway with a key service holds no KEK, so it cannot open the values an
export groups by; the key service releases them in one bulk request against an
``export-intent`` entry logged first (:mod:`bordergate.keys.bulk`).  In order:

1. read the stored (sealed) values of the grouping field, and the wrapped data
   key of every subject with a record in the collection (a value or not);
2. log the ``export-intent`` entry (count and Merkle root of those subjects'
   pseudonyms) with the log operator's promise of inclusion;
3. send it, the promise and the subjects with their wrapped keys to the key
   service, which checks the list against the intent and logs one
   ``key-access`` entry per key before answering;
4. group the values read in step 1 with those keys (nothing else opens).

The export's own entry then names the intent (``intent``).  The keys are not
cached: they serve this export only.

The intent and the key service's ``key-access`` entries (one per subject, by
pseudonym) are in the public log, and every number an export lets out must be
noised (docs/exports.md).  So this module must never ask for the keys of the
subjects *with a value* only: that list, exact, would name who has a value of a
protected field (a subject's pseudonym is in its records' ``write`` and
``access`` entries) and count them.  It asks for every subject with a record in
the collection that has a data key, which the log's ``write`` entries (and the
key service's key creations) already show; a subject with a value but no key is
refused (``record_unreadable``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bordergate.appender import logged_form
from bordergate.entries import encode_entry
from bordergate.errors import Unavailable
from bordergate.keys.bulk import subjects_root
from bordergate.keys.keyring import WrappedDataKey
from bordergate.policy.entities import Principal
from bordergate.residency.vault import Aggregate

if TYPE_CHECKING:
    from bordergate.gateway.service import Gateway

__all__ = ["sealed_export_aggregate"]


async def sealed_export_aggregate(gateway: Gateway, principal: Principal, *,
                                  collection: str, group_by: str, purpose: str, now: float
                                  ) -> tuple[Aggregate, int]:
    """The true groups of an allowed export by a sealed field, and the index of the
    ``export-intent`` entry that justified opening them (see the module docstring).

    Raises:
        Unavailable: the log, the store or the key service (``key_release_refused``,
            ``key_service_unavailable``); ``record_unreadable`` for a subject with
            a value but no data key.
    """
    assert gateway.key_service is not None
    store = gateway.vault.store
    values = await gateway._off_loop(store.field_values, collection, group_by)
    # every subject with a record, a value or not (see the module docstring)
    members = sorted({v.subject for v in values}, key=str)
    stored = await gateway._off_loop(lambda: [store.get_data_key(s) for s in members])
    keys = {s: w for s, w in zip(members, stored, strict=True) if w is not None}
    if any(v.value is not None and v.subject not in keys for v in values):
        raise Unavailable("a subject with a value has no data key; nothing released",
                          code="record_unreadable")
    subjects = [s for s in members if s in keys]
    wrapped: list[WrappedDataKey] = [keys[s] for s in subjects]
    pseudonyms = [gateway.pseudonyms.subject(str(s)) for s in subjects]
    entry = encode_entry("export-intent", now, {
        "principal": principal.to_json(), "collection": collection, "group_by": group_by,
        "purpose": purpose, "outcome": "allow", "subjects": len(subjects),
        "root": subjects_root(pseudonyms), "gateway": gateway.jurisdiction,
        "release": gateway.release})
    index, promises = await gateway.log.append_promised([entry])
    ciphers = {} if not wrapped else await gateway.key_service.release_export(
        entry=logged_form(gateway.log, entry), promise=promises[0], wrapped=wrapped)
    aggregate = await gateway._off_loop(lambda: gateway.vault.aggregate(
        collection, group_by, sealed=(values, ciphers)))
    return aggregate, index
