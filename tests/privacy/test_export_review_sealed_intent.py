"""Review of exports: an export by a sealed field must not name who has a value.

The promise (docs/exports.md): every number an export lets out is a noised
OpenDP draw, and no single record's value can be read off it; protected data
reaches a principal only through a decision that allows it.

The attack, against real processes (sequencer, key service, gateway of ``us``,
:func:`tests.keys.test_key_service_processes.keyed_deployment`): an analyst
exports ``users`` grouped by ``phone``, a protected, sealed and optional field.
With a key service the gateway first logs an ``export-intent`` entry, and the key
service one ``key-access`` entry per released key, each naming a subject
pseudonym.  The gateway asked for the keys of the subjects *with a phone* only,
so the public log (served read-only to anyone at ``/v1/log/tile``) listed
exactly who has a phone, exactly, without noise: a subject's pseudonym is in
the log's ``write`` and ``access`` entries of its records, so whoever knows a
subject (or read one of its public fields) learns whether it has a phone, which
the policy lets them read in aggregate only.  The intent's ``subjects`` was the
exact number of subjects with a phone, too (a differencing attack needs two
exports).  Now the export asks for the keys of every subject with a record in
the collection, so the intent and the key releases say only who has a record
there, which the ``write`` entries already say.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bordergate.entries import parse_entry
from bordergate.policy.entities import Principal
from tests.gateway.deployment import Tokens
from tests.keys.test_key_service_processes import (
    LOCAL,
    KeyedDeployment,
    keyed_deployment,
)

ANALYST = Principal("review-analyst", "ttus", "local", "us", frozenset({"analyst"}))
EXPORT = {"collection": "users", "group_by": "phone", "purpose": "analytics_aggregate"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedDeployment]:
    """A TEST-ONLY deployment: us with sequencer, key service and gateway processes."""
    yield from keyed_deployment(tmp_path_factory.mktemp("review-sealed-intent"))


def test_the_key_releases_of_an_export_do_not_name_who_has_a_value(
        keyed: KeyedDeployment) -> None:
    """An export grouped by a sealed optional field (phone) releases the keys of every
    subject with a record in the collection, whether or not it has a phone: the
    export-intent's count and the key-access entries naming it are the same for a
    subject with a phone and for ones without, so the public log does not tell them
    apart (it did: only the subject with a phone was listed)."""
    with httpx.Client(base_url=keyed.us.public_url, headers=Tokens().header(LOCAL, "us"),
                      timeout=60) as http:
        with_phone = str(http.post("/v1/subjects").json()["subject"])
        r = http.put(f"/v1/users/{with_phone}", params={"purpose": "operations"},
                     json={"subject": with_phone, "values": {
                         "handle": "phoned", "email": "phoned@example.test",
                         "phone": "+1 555 0100", "created_at": "2024-01-01T00:00:00Z"}})
        assert r.status_code == 200, r.text
    with httpx.Client(base_url=keyed.us.public_url, headers=Tokens().header(ANALYST, "us"),
                      timeout=60) as http:
        r = http.post("/v1/exports", json=EXPORT)
    assert r.status_code == 200, r.text
    index = r.json()["log"]["index"]
    entries = [parse_entry(e) for e in keyed.entries(index + 1)]
    intent_index = entries[index].body["intent"]
    p = keyed.pseudonyms()
    phoned, without = p.subject(with_phone), {p.subject(keyed.subject), p.subject(keyed.other)}
    # what anyone reading the public log links a pseudonym to: its records' writes
    written = {e.body["subject"] for e in entries if e.type == "write"}
    assert {phoned, *without} <= written
    released = {e.body["subject"] for e in entries if e.type == "key-access"
                and e.body["operation"] == "export" and e.body["justified"] == intent_index}
    assert phoned in released
    assert without <= released, "the log names who has no phone"
    assert entries[intent_index].body["subjects"] == len(released) >= 3
