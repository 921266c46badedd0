"""A write the key service answers late cannot re-create a subject erased meanwhile
(promise 8), against real processes.

Found by the residency review.  With a key service a write is logged, then asks
the key service for the subject's data key, then writes the store.  A key
service slow to answer (here: stopped with SIGSTOP for a moment, as a loaded
host or a network stall would) left time for the subject's erasure to be
logged and carried out; the write then stored a new data key and a readable
record of the subject the gateway had just erased, from a decision the log
shows before the erasure.  Now the store refuses the data key and the record
(409 ``subject_erased``): nothing of the subject is left.

The us log's sequencer, key service and gateway run as their own processes
(tests/keys/test_key_service_processes.py); keys are TEST-ONLY.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bordergate.entries import parse_entry
from bordergate.policy.entities import Principal
from bordergate.residency.stores import open_record_store
from bordergate.subjects import SubjectId
from tests.gateway.deployment import Tokens
from tests.keys.test_key_service_processes import KeyedDeployment, keyed_deployment

LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
LATE_EMAIL = "late-key@example.test"


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[KeyedDeployment]:
    yield from keyed_deployment(tmp_path)


def test_a_write_waiting_for_the_key_service_cannot_re_create_an_erased_subject(
        keyed: KeyedDeployment) -> None:
    """Promise 8: a write logged before an erasure, whose data key the key service
    releases only after the erasure was done, leaves no data key and no record of the
    subject: it answers 409 ``subject_erased`` and a read finds nothing."""
    with httpx.Client(base_url=keyed.us.public_url, timeout=60,
                      headers=Tokens().header(LOCAL, "us")) as http:
        subject = str(http.post("/v1/subjects").json()["subject"])
        before = len(keyed.entries())
        answers: dict[str, httpx.Response] = {}

        def write() -> None:
            answers["write"] = http.put("/v1/users/late", params={"purpose": "operations"},
                                        json={"subject": subject, "values": {
                                            "handle": "late", "email": LATE_EMAIL,
                                            "created_at": "2024-01-01T00:00:00Z"}})

        os.kill(keyed.key_service.pid, signal.SIGSTOP)
        try:
            writer = threading.Thread(target=write)
            writer.start()
            # the write's entry is durable (it waits for the key service now)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                    parse_entry(e).type == "write" for e in keyed.entries()[before:]):
                time.sleep(0.1)
            erased = http.delete(f"/v1/subjects/{subject}", params={"purpose": "erasure"})
            assert erased.status_code == 200, erased.text
        finally:
            os.kill(keyed.key_service.pid, signal.SIGCONT)
        writer.join(60)
        late = answers["write"]
        read = http.get("/v1/users/late", params={"purpose": "operations", "fields": "email"})
    kinds = [parse_entry(e).type for e in keyed.entries(erased.json()["log"]["index"])]
    assert kinds.index("write", before) < erased.json()["log"]["index"], kinds
    assert (late.status_code, late.json().get("code")) == (409, "subject_erased"), late.text
    assert read.status_code == 404 and LATE_EMAIL not in read.text, read.text
    store = open_record_store(keyed.us.store, jurisdiction="us")
    try:
        assert store.subject_records(SubjectId.parse(subject)) == []
        assert store.get_data_key(SubjectId.parse(subject)) is None
    finally:
        store.close()
