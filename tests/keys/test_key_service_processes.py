"""Key access justifications (issue 13, item 3), against real processes.

The us log's sequencer (``bordergate log sequencer``), the us key service
(``bordergate keys serve``) and the us gateway (``bordergate gateway serve``) run
as their own processes; the gateway holds no KEK.  A client holding the gateway's
credentials (to the key service and to the log) but no logged, allowed, fresh
decision for a subject cannot obtain its data key; each refusal has its stable
code; an honest read works; the audit matches every ``key-access`` entry to the
decision that justified it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.appender import AttributedLog
from bordergate.audit.bundlestore import BundleLookup
from bordergate.audit.inspection import open_inspector
from bordergate.audit.rules import keyaccess
from bordergate.config import Jurisdiction, load_config
from bordergate.entries import Pseudonymizer, encode_entry, parse_entry
from bordergate.gateway.startup import provision
from bordergate.keys.keyring import SubjectCipher
from bordergate.log_access import log_verifier, read_pseudonym_secret, remote_appender
from bordergate.policy.entities import Principal
from bordergate.residency.schema import load_schema
from bordergate.residency.stores import open_record_store
from bordergate.residency.vault import Vault
from bordergate.subjects import SubjectId
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.note import Signer
from bordergate.tlog.promise import promise_for
from tests.gateway.conftest import BORDERGATE, start_process, stop_process, wait_healthy
from tests.gateway.deployment import Tokens, free_port, use_sequencer_service, write_deployment
from tests.releases.keys import review_policy

LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
EMAIL = "keys@example.test"


@dataclass
class KeyedDeployment:
    """us with its sequencer, key service and gateway processes running."""

    config: Path
    us: Jurisdiction
    subject: str  # written through the gateway: it has a data key
    other: str    # written too
    key_service: subprocess.Popen[bytes]
    #: sequencer, key service, gateway (stopped by the fixture in reverse order)
    processes: tuple[subprocess.Popen[bytes], ...] = ()

    @property
    def key_url(self) -> str:
        assert self.us.key_service is not None
        return self.us.key_service.url + "/v1/data-key"

    def key_headers(self) -> dict[str, str]:
        assert self.us.key_service is not None
        token = self.us.key_service.credential_file.read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def pseudonyms(self) -> Pseudonymizer:
        return Pseudonymizer(read_pseudonym_secret(self.us.log.pseudonym_secret_file))

    def entries(self, covering: int = 0) -> list[bytes]:
        """The published log, once a checkpoint covers index ``covering``."""
        client = LogClient(DirectorySource(Path(self.us.log.storage)), log_verifier(self.us))
        deadline = time.monotonic() + 30
        size = client.checkpoint().checkpoint.size
        while size <= covering and time.monotonic() < deadline:
            time.sleep(0.1)
            size = client.checkpoint().checkpoint.size
        return [client.entry(i, size) for i in range(size)]

    def wrapped(self, subject: str) -> dict[str, object]:
        store = open_record_store(self.us.store, jurisdiction="us")
        try:
            key = store.get_data_key(SubjectId.parse(subject))
        finally:
            store.close()
        assert key is not None
        return {"key_id": key.key_id.hex(), "kek_version": key.kek_version,
                "wrapped": base64.b64encode(key.wrapped).decode()}


def _add_key_service(config: Path, port: int) -> None:
    text = config.read_text().replace(
        "[jurisdictions.us.issuer]\n",
        "[jurisdictions.us.key_service]\n"
        f'url = "http://127.0.0.1:{port}"\n'
        'credential_file = "us/us-gw-1-keys.cred"\n'
        'credentials_file = "us/key-service-gateways.txt"\n'
        'append_credential_file = "us/us-keys.cred"\n'
        # no data-key cache: every read asks the key service (deterministic key-access)
        "window_seconds = 30\ncache_seconds = 0\n"
        "[jurisdictions.us.issuer]\n", 1)
    config.write_text(text)
    provision(load_config(config))


def _start(argv: list[str], url: str) -> subprocess.Popen[bytes]:
    """Start a process; returned once ``url`` answers 200."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"{argv[1:3]} exited: {err[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"{argv[1:3]} did not start")


def _write(http: httpx.Client, email: str) -> str:
    subject = str(http.post("/v1/subjects").json()["subject"])
    r = http.put(f"/v1/users/{subject}", params={"purpose": "operations"},
                 json={"subject": subject, "values": {
                     "handle": "keys", "email": email,
                     "created_at": "2024-01-01T00:00:00Z"}})
    assert r.status_code == 200, r.text
    return subject


def audited(keyed: KeyedDeployment, entries: list[bytes]) -> Any:
    """The reference auditor's inspector after reading ``entries`` of us's log, with
    the key-access claims settled (``inspector.findings``, ``inspector.tally``)."""
    inspector = open_inspector(
        reference=True, jurisdiction="us", origin=keyed.us.log.origin,
        bundles=lambda digest: BundleLookup(digest, None, "bundle_unavailable", "not here"),
        reviewers=review_policy())
    for index, data in enumerate(entries):
        inspector.feed(index, data)
    inspector.finish()
    keyaccess.settle_key_claims(inspector, entries.__getitem__)
    return inspector


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedDeployment]:
    """A TEST-ONLY deployment: us with sequencer, key service and gateway processes."""
    yield from keyed_deployment(tmp_path_factory.mktemp("keyed"))


def keyed_deployment(root: Path) -> Iterator[KeyedDeployment]:
    """Run us's sequencer, key service and gateway under ``root`` while the caller
    iterates (TEST-ONLY; the ``keyed`` fixture of this and other modules)."""
    config = write_deployment(root)
    use_sequencer_service(config, free_port())
    _add_key_service(config, free_port())
    us = load_config(config).jurisdiction("us")
    assert us.key_service is not None
    assert us.sequencer is not None
    common = ["--config", str(config), "--jurisdiction", "us"]
    processes = [_start([BORDERGATE, "log", "sequencer", *common, "--interval", "0.1",
                         "--unwitnessed"], f"{us.log.sequencer_url}/checkpoint")]
    try:
        processes.append(_start([BORDERGATE, "keys", "serve", *common],
                                f"{us.key_service.url}/healthz"))
        processes.append(start_process(config, "us"))
        wait_healthy(us.public_url, processes[-1])
        with httpx.Client(base_url=us.public_url, headers=Tokens().header(LOCAL, "us"),
                          timeout=30) as http:
            subject, other = _write(http, EMAIL), _write(http, "other@example.test")
        yield KeyedDeployment(config, us, subject, other, processes[1], tuple(processes))
    finally:
        for process in reversed(processes):
            stop_process(process)


def test_honest_read_through_gateway_sequencer_and_key_service(
        keyed: KeyedDeployment) -> None:
    """Issue 13.3: a read through the gateway (which holds no KEK) opens the protected
    field with the key the key service released for the logged access entry; the key
    service logged a key-access entry naming that entry, with its own credential."""
    with httpx.Client(base_url=keyed.us.public_url, headers=Tokens().header(LOCAL, "us"),
                      timeout=30) as http:
        r = http.get(f"/v1/users/{keyed.subject}",
                     params={"purpose": "operations", "fields": "email"})
    assert r.status_code == 200, r.text
    assert r.json()["fields"]["email"] == EMAIL
    index = r.json()["log"]["index"]
    accesses = [parse_entry(e) for e in keyed.entries(index + 1)
                if b'"type":"key-access"' in e]
    ops = {(a["operation"], a["justified"]) for a in accesses}
    assert ("read", index) in ops
    assert "create" in {op for op, _ in ops}  # the writes of the fixture
    assert {a.body.get("appender") for a in accesses} == {"us-keys"}


def _logged(keyed: KeyedDeployment, body: dict[str, object], *,
            t: float | None = None) -> tuple[bytes, bytes]:
    """Log an ``access`` entry with the gateway's append credential (the test plays the
    gateway); the bytes the log holds and the log operator's promise."""
    assert keyed.us.log.sequencer is not None
    entry = encode_entry("access", time.time() if t is None else t, {
        "principal": LOCAL.to_json(), "collection": "users", "record": "record:x",
        "purpose": "operations", "bundle": "b", "decisions": [], "released": ["email"],
        "gateway": "us", **body})

    async def append() -> tuple[bytes, bytes]:
        log: AttributedLog = remote_appender(keyed.us, keyed.us.log.sequencer.credential_file)  # type: ignore[union-attr]
        try:
            _, promises = await log.append_promised([entry])
        finally:
            await log.aclose()
        return log.logged(entry), promises[0]
    return asyncio.run(append())


def _ask(keyed: KeyedDeployment, entry: bytes | None, promise: bytes | None,
         subject: str | None = None) -> httpx.Response:
    subject = subject or keyed.subject
    return httpx.post(keyed.key_url, headers=keyed.key_headers(), timeout=30, json={
        "operation": "read", "subject": subject,
        "entry": None if entry is None else base64.b64encode(entry).decode(),
        "promise": None if promise is None else promise.decode(),
        "wrapped": keyed.wrapped(subject)})


def test_no_logged_decision_no_data_key(keyed: KeyedDeployment) -> None:
    """Issue 13.3: with the gateway's credential to the key service but no entry
    (a gateway that skips the log), the key is refused: key_justification_missing;
    without the credential: 401."""
    r = _ask(keyed, None, None)
    assert (r.status_code, r.json()["code"]) == (403, "key_justification_missing")
    r = httpx.post(keyed.key_url, json={}, timeout=30)
    assert (r.status_code, r.json()["code"]) == (401, "unauthenticated")


def test_unproven_stale_mismatched_or_denied_entries_are_refused(
        keyed: KeyedDeployment) -> None:
    """Issue 13.3: an entry with neither a valid promise (another key's, or the
    promise of another entry), a stale entry, an entry about another subject and a
    denied decision are each refused with their stable code; the same client with a
    logged, allowed, fresh entry gets a key that opens the subject's record."""
    p = keyed.pseudonyms()
    mine = {"subject": p.subject(keyed.subject), "outcome": "allow"}
    entry, promise = _logged(keyed, mine)
    forger = Signer.from_seed(keyed.us.log.origin, b"\x42" * 32)  # TEST-ONLY
    forged = promise_for(forger, 0, entry, int(time.time() * 1000))
    other_entry, other_promise = _logged(keyed, {"subject": p.subject(keyed.other),
                                                 "outcome": "allow"})
    stale_entry, stale_promise = _logged(keyed, mine, t=time.time() - 120)
    denied_entry, denied_promise = _logged(keyed, {**mine, "outcome": "deny"})
    cases = {
        "key_justification_unproven": (entry, forged),
        "key_justification_subject_mismatch": (other_entry, other_promise),
        "key_justification_stale": (stale_entry, stale_promise),
        "key_justification_denied": (denied_entry, denied_promise),
    }
    for code, (e, pr) in cases.items():
        r = _ask(keyed, e, pr)
        assert (r.status_code, r.json()["code"]) == (403, code), r.text
    r = _ask(keyed, entry, other_promise)  # a valid promise, of another entry
    assert (r.status_code, r.json()["code"]) == (403, "key_justification_unproven")
    r = _ask(keyed, entry, promise)
    assert r.status_code == 200, r.text
    answer = r.json()
    cipher = SubjectCipher(SubjectId.parse(keyed.subject), bytes.fromhex(answer["key_id"]),
                           answer["kek_version"], base64.b64decode(answer["data_key"]))
    store = open_record_store(keyed.us.store, jurisdiction="us")
    try:
        vault = Vault(load_schema(load_config(keyed.config).schema_path), store,
                      _no_kek_ring(store))
        sealed = vault.get_sealed("users", keyed.subject, ["email"])
        assert vault.open_sealed(sealed, cipher).values["email"] == EMAIL
    finally:
        store.close()


def test_a_proof_in_an_unwitnessed_checkpoint_or_a_malformed_proof_is_refused(
        keyed: KeyedDeployment) -> None:
    """Item 4, against the real process: instead of a promise a request may carry an
    inclusion proof in a checkpoint the key service trusts (cosigned by the log's
    witness quorum).  This deployment's log has no witness (quorum 0), so the key
    service trusts no checkpoint: a real, log-signed checkpoint with the entry's
    real inclusion proof is refused key_justification_unwitnessed; a proof that is
    not {checkpoint, index, path} is malformed_key_request (400)."""
    p = keyed.pseudonyms()
    entry, _ = _logged(keyed, {"subject": p.subject(keyed.subject), "outcome": "allow"})
    entries = keyed.entries()
    index = entries.index(entry) if entry in entries else len(entries) - 1
    client = LogClient(DirectorySource(Path(keyed.us.log.storage)), log_verifier(keyed.us))
    signed = client.checkpoint()
    proof = {"checkpoint": signed.note.decode(), "index": index,
             "path": [base64.b64encode(h).decode()
                      for h in client.inclusion_proof(index, signed.checkpoint.size)]}
    body = {"operation": "read", "subject": keyed.subject,
            "entry": base64.b64encode(entry).decode(), "proof": proof,
            "wrapped": keyed.wrapped(keyed.subject)}
    r = httpx.post(keyed.key_url, headers=keyed.key_headers(), timeout=30, json=body)
    assert (r.status_code, r.json()["code"]) == (403, "key_justification_unwitnessed"), r.text
    r = httpx.post(keyed.key_url, headers=keyed.key_headers(), timeout=30,
                   json={**body, "proof": {"checkpoint": proof["checkpoint"]}})
    assert (r.status_code, r.json()["code"]) == (400, "malformed_key_request"), r.text


def test_a_string_that_is_not_unicode_text_is_a_malformed_request(
        keyed: KeyedDeployment) -> None:
    """Bad input (found by a review): a lone surrogate escaped in JSON (``"\\ud800"``)
    in the promise, a proof's checkpoint, the subject, the wrapped key's id, or an
    export's promise is ``malformed_key_request`` (400), never a traceback and a
    500, and the service still releases an honest key after them."""
    p = keyed.pseudonyms()
    entry, promise = _logged(keyed, {"subject": p.subject(keyed.subject), "outcome": "allow"})
    good = {"operation": "read", "subject": keyed.subject,
            "entry": base64.b64encode(entry).decode(), "promise": promise.decode(),
            "wrapped": keyed.wrapped(keyed.subject)}
    lone = '"\\ud800"'
    bodies = [
        json.dumps({**good, "promise": "X"}).replace('"X"', lone),
        json.dumps({**good, "promise": None, "proof": {"checkpoint": "X", "index": 0,
                                                        "path": []}}).replace('"X"', lone),
        json.dumps({**good, "subject": "X"}).replace('"X"', lone),
        json.dumps({**good, "wrapped": {**good["wrapped"], "key_id": "X"}}  # type: ignore[dict-item]
                   ).replace('"X"', lone),
    ]
    bulk = json.dumps({"operation": "export", "entry": good["entry"], "promise": "X",
                       "subjects": []}).replace('"X"', lone)
    for url, body in [*((keyed.key_url, b) for b in bodies), (keyed.key_url + "s", bulk)]:
        r = httpx.post(url, headers={**keyed.key_headers(), "content-type": "application/json"},
                       content=body, timeout=30)
        assert (r.status_code, r.json()["code"]) == (400, "malformed_key_request"), r.text
    assert _ask(keyed, entry, promise).status_code == 200


def _no_kek_ring(store: object) -> object:
    from bordergate.keys.keyring import KeyRing
    from bordergate.keys.service_client import KeksHeldElsewhere
    return KeyRing(KeksHeldElsewhere("us"), store)  # type: ignore[arg-type]


def test_audit_matches_every_key_access_entry_to_its_decision(keyed: KeyedDeployment) -> None:
    """Issue 13.3: over the running deployment's log (honest reads and writes, and the
    key the test obtained with a logged allowed entry), the audit's key-access rule
    matches every key-access entry to its decision: no key_promise_broken nor
    key_access_unjustified; every key-access entry is counted."""
    with httpx.Client(base_url=keyed.us.public_url, headers=Tokens().header(LOCAL, "us"),
                      timeout=30) as http:
        assert http.get(f"/v1/users/{keyed.other}",
                        params={"purpose": "operations"}).status_code == 200
        index = r.json()["log"]["index"] if (r := http.get(
            f"/v1/users/{keyed.subject}", params={"purpose": "operations"})) else 0
    entries = keyed.entries(index + 1)
    inspector = audited(keyed, entries)
    counted = sum(n for k, n in inspector.tally.key_events.items() if k.startswith("key-access"))
    assert counted == sum(b'"type":"key-access"' in e for e in entries) > 0
    kinds = {f.kind for f in inspector.findings}
    assert not kinds & {"key_promise_broken", "key_access_unjustified", "key_access_malformed"}


def test_without_the_key_service_reads_are_503_and_release_nothing(
        keyed: KeyedDeployment) -> None:
    """Promise 3 with a key service (run last: it stops the module's key service): a
    read whose key cannot be released answers 503 key_service_unavailable with no
    value, although its access entry is logged; public fields need no key."""
    stop_process(keyed.key_service)
    with httpx.Client(base_url=keyed.us.public_url, headers=Tokens().header(LOCAL, "us"),
                      timeout=30) as http:
        r = http.get(f"/v1/users/{keyed.other}",
                     params={"purpose": "operations", "fields": "email"})
        assert (r.status_code, r.json()["code"]) == (503, "key_service_unavailable")
        assert "other@example.test" not in r.text
        r = http.get(f"/v1/users/{keyed.other}",
                     params={"purpose": "operations", "fields": "handle"})
        assert r.status_code == 200 and r.json()["fields"]["handle"] == "keys"


def test_production_needs_a_key_service(tmp_path: Path) -> None:
    """Issue 13.3: under the production profile a gateway whose jurisdiction names no
    key service refuses to start (key_service_required): gateways hold no KEK there;
    development still may."""
    from bordergate.errors import ConfigError
    from bordergate.gateway.startup import refuse_local_keks
    from bordergate.profile import Profile

    us = load_config(write_deployment(tmp_path)).jurisdiction("us")
    with pytest.raises(ConfigError) as refused:
        refuse_local_keks(Profile.PRODUCTION, us)
    assert refused.value.code == "key_service_required"
    refuse_local_keks(Profile.DEVELOPMENT, us)
