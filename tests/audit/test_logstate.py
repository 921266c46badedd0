"""The auditor's state file: round trip, and every malformed case is a clear error.

Promise 5: the state is what lets the next audit prove consistency from the
last verified checkpoint; a damaged one must never be trusted silently.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.audit.logstate import AuditState, decode_state, encode_state
from bordergate.audit.logstate_dir import DirectoryStateStore, state_file_name
from bordergate.errors import VerificationError
from bordergate.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from bordergate.tlog.merkle import leaf_hash
from bordergate.tlog.tiles import TileFrontier
from tests.tlog.witnessed import ORIGIN, log_signer


def state_of(size: int) -> AuditState:
    frontier = TileFrontier()
    entries = [b"entry %d" % i for i in range(size)]
    frontier.append(entries, [leaf_hash(e) for e in entries])
    note = sign_checkpoint(Checkpoint(ORIGIN, size, frontier.root()), log_signer())
    return AuditState(open_checkpoint(note, log_signer().verifier()), frontier)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=70_000))
def test_round_trip(size: int) -> None:
    """Promise 5: a saved edge restores to the same size and root, for any size."""
    state = state_of(size)
    back = decode_state(encode_state(state), log_signer().verifier())
    assert back.size == size and back.frontier.root() == state.frontier.root()
    assert back.frontier.partials() == state.frontier.partials()


def edit(change: Callable[[dict[str, object]], None]) -> bytes:
    doc = json.loads(encode_state(state_of(300)))
    change(doc)
    return json.dumps(doc).encode()


def frontier(doc: dict[str, object]) -> dict[str, object]:
    value = doc["frontier"]
    assert isinstance(value, dict)
    return value


MALFORMED: dict[str, bytes] = {
    "not-json": b"{",
    "not-utf8": b"\xff\xfe",
    "wrong-type": edit(lambda d: d.update(type="other")),
    "no-checkpoint": edit(lambda d: d.pop("checkpoint")),
    "bad-signature": edit(lambda d: d.update(checkpoint=str(d["checkpoint"]).replace(
        "300", "301", 1))),
    "size-mismatch": edit(lambda d: frontier(d).update(size=299)),
    "size-bool": edit(lambda d: frontier(d).update(size=True)),
    "levels-not-list": edit(lambda d: frontier(d).update(levels="x")),
    "level-short": edit(lambda d: frontier(d).update(levels=[[], []])),
    "hash-not-hex": edit(lambda d: frontier(d).update(levels=[["zz"] * 44, ["00" * 32]])),
    "hash-short": edit(lambda d: frontier(d).update(levels=[["00"] * 44, ["00" * 32]])),
    "wrong-hashes": edit(lambda d: frontier(d).update(levels=[["00" * 32] * 44, ["00" * 32]])),
    "bundle-not-base64": edit(lambda d: frontier(d).update(bundle="***")),
    "bundle-truncated": edit(lambda d: frontier(d).update(
        bundle=base64.b64encode(b"\x00\x09abc").decode())),
    "too-large": b" " * (2 << 20),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_state_is_refused(data: bytes) -> None:
    """A damaged state file raises audit_state_invalid, never another exception."""
    with pytest.raises(VerificationError) as info:
        decode_state(data, log_signer().verifier())
    assert info.value.code == "audit_state_invalid"


def test_directory_store_is_atomic_and_contained(tmp_path: Path) -> None:
    """Origins cannot escape the state directory; writes replace whole files."""
    store = DirectoryStateStore(tmp_path / "state")
    assert store.read("a/../../x") is None
    store.write("a/../../x", b"one")
    store.write("a/../../x", b"two")
    assert store.read("a/../../x") == b"two"
    assert [p.name for p in (tmp_path / "state").iterdir()] == [state_file_name("a/../../x")]
    assert "/" not in state_file_name("a/../../x")
    assert state_file_name("o" * 300).startswith("sha256-")
    with pytest.raises(ValueError):
        store.write_evidence("../escape.json", b"{}")
