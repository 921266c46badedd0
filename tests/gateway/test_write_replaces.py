"""A write replaces the whole record, so every field it removes is decided as written
(promise 2, found by a review), against a real gateway process.

The deployment's policy bundle (a copy of the packaged one, TEST-ONLY) adds one
permit: a service principal at home may write ``public`` fields, and nothing else.
It writes a profile with only its public fields: before, the write decided and
logged only those and then replaced the record, deleting ``gender`` (protected) and
``precise_location`` (restricted), fields it may not write.  Now the stored fields the
body leaves out are decided too: the write is denied (403 ``policy_denied``,
logged, naming every field), and the record keeps its values.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from bordergate.config import load_config
from bordergate.policy.entities import Principal
from tests.gateway.conftest import start_process, stop_process, wait_healthy
from tests.gateway.deployment import Tokens, write_deployment

LOCAL = Principal("local-us", "ttus", "local", "us", frozenset({"engineer"}))
SERVICE = Principal("profile-service", "ttus", "service", "us", frozenset({"service"}))
PUBLIC_WRITES = '''
@id("service-writes-public")
permit (principal, action == Action::"write", resource is Field)
when { principal.org_kind == "service" && resource.class == "public" &&
       principal.location == resource.home };
'''


def test_a_write_cannot_remove_the_fields_it_may_not_write(tmp_path: Path) -> None:
    """Promise 2: a write's decisions cover the fields it removes."""
    path = write_deployment(tmp_path, k_min=25)
    policies = tmp_path / "policy" / "policies.cedar"
    policies.write_text(policies.read_text() + PUBLIC_WRITES)
    url = load_config(path).jurisdiction("us").public_url
    tokens = Tokens()
    process = start_process(path, "us")
    try:
        wait_healthy(url, process)
        with httpx.Client(base_url=url, timeout=30.0) as c:
            local = tokens.header(LOCAL, "us")
            subject = c.post("/v1/subjects", headers=local).json()["subject"]
            full = {"display_name": "before", "private_account": False,
                    "gender": "kept", "precise_location": "52.52,13.40"}
            w = c.put(f"/v1/profiles/{subject}", params={"purpose": "operations"},
                      headers=local, json={"subject": subject, "values": full})
            assert w.status_code == 200, w.text
            only_public = {"display_name": "after", "private_account": True}
            service = tokens.header(SERVICE, "us")
            r = c.put(f"/v1/profiles/{subject}", params={"purpose": "operations"},
                      headers=service, json={"subject": subject, "values": only_public})
            assert (r.status_code, r.json()["code"]) == (403, "policy_denied"), r.text
            refused = {x["field"] for x in r.json()["refused"]}
            assert refused == {"gender", "precise_location"}
            read = c.get(f"/v1/profiles/{subject}", headers=local,
                         params={"purpose": "operations",
                                 "fields": "display_name,gender,precise_location"})
            assert read.status_code == 200, read.text
            assert read.json()["fields"] == {"display_name": "before", "gender": "kept",
                                             "precise_location": "52.52,13.40"}
            # what it may write it writes: the public fields, the others left as stored
            both = {**only_public, "gender": "kept", "precise_location": "52.52,13.40"}
            r = c.put(f"/v1/profiles/{subject}", params={"purpose": "operations"},
                      headers=service, json={"subject": subject, "values": both})
            assert r.status_code == 403  # sending them is writing them: still denied
    finally:
        stop_process(process)
