"""A migration batch's new data keys, created by the home's key service.

When the deployment names a key service for a home (``[jurisdictions.X.key_service]``),
the migration opens no KEK: :meth:`bordergate.migration.homes.Home.create_keys`
logs the batch's ``migration`` entries first (with the log operator's promises),
then asks the key service, per entry, to create the data keys of the batch's
new subjects that own records of that entry's table, sending every (subject,
record id) pair of the table so the key service can recompute the entry's
``records_root`` (:func:`bordergate.keys.bulk.check_migration_justification`).
Only then are the records sealed and stored.  The key service logs each created
key as a ``key-access`` entry (operation ``migrate``) naming the entry.

Subjects that already have a data key in the home (a batch resumed after its
store write) cannot be unwrapped this way: the run fails closed
(``kek_held_by_key_service``) and the batch stays where it was.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import httpx

from bordergate.errors import Unavailable
from bordergate.keys.keyring import SubjectCipher, WrappedDataKey
from bordergate.subjects import SubjectId

__all__ = ["MigrationKeys"]


class MigrationKeys:
    """A synchronous client of one key service's ``migrate`` bulk creation."""

    def __init__(self, url: str, credential: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(timeout=timeout, headers={
            "Authorization": f"Bearer {credential}"},
            verify=self.url.startswith("https://"))  # plain http: no certificate store

    def create(self, *, entry: bytes, promise: bytes,
               pairs: Sequence[tuple[SubjectId, str]], create: Sequence[SubjectId]
               ) -> dict[str, tuple[SubjectCipher, WrappedDataKey]]:
        """New data keys of ``create`` (subjects owning records of ``pairs``) for the
        logged migration ``entry`` (as the log holds it) and its ``promise``; by
        subject id, each as a cipher and the wrapped key to store.

        Raises:
            Unavailable: ``key_release_refused`` (the service's code in the message)
                or ``key_service_unavailable``.
        """
        body = {"operation": "migrate", "entry": base64.b64encode(entry).decode("ascii"),
                "promise": promise.decode("utf-8"),
                "records": [{"subject": str(s), "record": r} for s, r in pairs],
                "create": [str(s) for s in create]}
        try:
            r = self._client.post(f"{self.url}/v1/data-keys", content=json.dumps(body),
                                  headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise Unavailable(f"key service unreachable: {exc}",
                              code="key_service_unavailable") from exc
        if r.status_code != 200:
            try:
                code = str(r.json().get("code"))[:64]
            except (ValueError, AttributeError):
                code = f"http_{r.status_code}"
            raise Unavailable(f"the key service refused the batch's keys ({code})",
                              code="key_service_unavailable" if r.status_code >= 500
                              else "key_release_refused")
        by_id = {str(s): s for s in create}
        made: dict[str, tuple[SubjectCipher, WrappedDataKey]] = {}
        try:
            for item in r.json()["keys"]:
                subject = by_id[item["subject"]]
                key_id, version = bytes.fromhex(item["key_id"]), int(item["kek_version"])
                made[str(subject)] = (
                    SubjectCipher(subject, key_id, version,
                                  base64.b64decode(item["data_key"], validate=True)),
                    WrappedDataKey(subject, key_id, version,
                                   base64.b64decode(item["wrapped"], validate=True)))
        except (KeyError, TypeError, ValueError) as exc:
            raise Unavailable("the key service answered garbage",
                              code="key_service_unavailable") from exc
        if set(made) != set(by_id):
            raise Unavailable("the key service answered other subjects' keys",
                              code="key_service_unavailable")
        return made

    def close(self) -> None:
        self._client.close()
