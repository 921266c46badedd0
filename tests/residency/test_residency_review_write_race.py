"""A write removes only stored fields it decided, even beside another write (promise 2).

Found by the residency review.  A write replaces the whole record, so the
gateway decides (and logs) every stored field the body leaves out as written
too (tests/gateway/test_write_replaces.py).  But it read the stored fields
before its decision and replaced the record after its entry was durable: a
field another writer added in between was removed by a write that never
decided it.  A principal allowed to write only ``public`` fields, writing its
record again and again, thus removed the ``protected`` and ``restricted``
values that staff wrote meanwhile, and the log shows only public fields
written.  The store now gets the names the write decided, and refuses (409
``record_changed``, nothing written) to replace a record holding a field
outside them; the writer decides again on a retry.

The gateway is the real one in process (SQLite store, key file, Cedar, the
sequencer; the log on the in-memory twin), with the policy bundle of
tests/gateway/test_write_replaces.py (a service may write public fields only),
so that the test can hold the service's write at the store while staff write.
Keys and bundle are TEST-ONLY.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.config import load_config
from bordergate.errors import Conflict
from bordergate.gateway.app import create_app
from bordergate.gateway.service import Gateway
from bordergate.gateway.startup import open_gateway
from bordergate.residency.schema import Schema
from bordergate.subjects import SubjectId
from bordergate.tlog.storage.memory import MemoryStorage
from tests.gateway.deployment import Tokens, write_deployment
from tests.gateway.test_write_replaces import LOCAL, PUBLIC_WRITES, SERVICE
from tests.residency.conftest import StoreFactory, make_vault


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    path = write_deployment(tmp_path, k_min=25)
    policies = tmp_path / "policy" / "policies.cedar"
    policies.write_text(policies.read_text() + PUBLIC_WRITES)
    gw = open_gateway(load_config(path), "us", log_storage=MemoryStorage())
    try:
        yield gw
    finally:
        gw.close()


def test_a_public_only_write_cannot_remove_fields_written_beside_it(
        gateway: Gateway) -> None:
    """Promise 2: a field added by another write after this write was decided is not
    removed by it: the write answers 409 ``record_changed`` and the record keeps the
    protected and restricted values; decided again, it is denied (it would remove them)."""
    tokens = Tokens()
    local, service = tokens.header(LOCAL, "us"), tokens.header(SERVICE, "us")
    reached, go_on = threading.Event(), threading.Event()
    store: Any = gateway.vault.store
    owner = store.owner
    armed = [False]

    def held_owner(collection: str, record_id: str) -> SubjectId:
        if armed[0]:
            armed[0] = False
            reached.set()
            assert go_on.wait(20)
        result: SubjectId = owner(collection, record_id)
        return result

    store.owner = held_owner

    async def main() -> dict[str, Any]:
        await gateway.announce_start(unreviewed=True, release=None)
        transport = httpx.ASGITransport(app=create_app(gateway))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            subject = (await c.post("/v1/subjects", headers=local)).json()["subject"]
            url, params = f"/v1/profiles/{subject}", {"purpose": "operations"}
            public = {"display_name": "before", "private_account": False}
            r = await c.put(url, params=params, headers=local,
                            json={"subject": subject, "values": public})
            assert r.status_code == 200, r.text
            armed[0] = True
            late = asyncio.create_task(c.put(
                url, params=params, headers=service,
                json={"subject": subject, "values": {"display_name": "after",
                                                     "private_account": True}}))
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, reached.wait, 20), "write never ran"
            full = {**public, "gender": "kept", "precise_location": "52.52,13.40"}
            staff = await c.put(url, params=params, headers=local,
                                json={"subject": subject, "values": full})
            go_on.set()
            answer = await late
            read = await c.get(url, headers=local, params={
                "purpose": "operations", "fields": "display_name,gender,precise_location"})
            again = await c.put(url, params=params, headers=service,
                                json={"subject": subject, "values": {
                                    "display_name": "after", "private_account": True}})
            return {"staff": staff, "late": answer, "read": read, "again": again}

    out = asyncio.run(main())
    assert out["staff"].status_code == 200, out["staff"].text
    assert out["read"].json()["fields"] == {"display_name": "before", "gender": "kept",
                                            "precise_location": "52.52,13.40"}, out["read"].text
    assert out["late"].status_code == 409, out["late"].text
    assert out["late"].json()["code"] == "record_changed"
    assert (out["again"].status_code, out["again"].json()["code"]) == (403, "policy_denied")


def test_every_store_refuses_to_remove_an_undecided_field(
        store_factory: StoreFactory, demo_schema: Schema) -> None:
    """Promise 2, on the memory, SQLite and PostgreSQL stores alike: a replacement
    that decided fewer fields than the record holds is refused (``record_changed``,
    nothing written); one that decided them all (or is not checked) replaces it."""
    store = store_factory("us")
    vault = make_vault(demo_schema, store)
    subject = vault.mint_subject()
    full = {"display_name": "a", "private_account": False, "gender": "kept"}
    vault.put("profiles", "p1", subject, full)
    with pytest.raises(Conflict) as refused:
        vault.put("profiles", "p1", subject, {"display_name": "b", "private_account": True},
                  decided={"display_name", "private_account"})
    assert refused.value.code == "record_changed"
    assert vault.get("profiles", "p1", ["display_name", "gender"]).values == {
        "display_name": "a", "gender": "kept"}
    vault.put("profiles", "p1", subject, {"display_name": "c", "private_account": True},
              decided={"display_name", "private_account", "gender"})
    assert vault.get("profiles", "p1").values == {"display_name": "c",
                                                  "private_account": True}
    vault.put("profiles", "p2", subject, {"display_name": "n", "private_account": True},
              decided={"display_name", "private_account"})
