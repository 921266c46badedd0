"""The auditor's log check as a library: state, consistency, quorum, only new bundles.

Promise 5 (append-only and witnessed): these tests run :func:`audit_log` on
real logs in directories (written by the real sequencer) with the in-memory
state store twin, and count what the auditor reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bordergate.audit.logcheck import audit_log
from bordergate.audit.logstate import MemoryStateStore, decode_state
from bordergate.errors import ConfigError, NotFound
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.evidence import verify_evidence
from bordergate.tlog.tiles import TILE_WIDTH, parse_path
from tests.audit.auditlogs import grow
from tests.tlog.witnessed import ORIGIN, log_signer, make_log, witness_signer


class RecordingSource(DirectorySource):
    """A directory source that remembers every path it was asked for."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.paths: list[str] = []

    def fetch(self, path: str, limit: int) -> bytes | None:
        self.paths.append(path)
        return super().fetch(path, limit)


def client_for(log: Path, *, witnesses: int = 0, quorum: int = 0) -> LogClient:
    return LogClient(RecordingSource(log), log_signer().verifier(),
                     cosigners=[witness_signer(n).verifier() for n in range(witnesses)],
                     quorum=quorum)


def bundles_read(client: LogClient) -> list[int]:
    assert isinstance(client.source, RecordingSource)
    return sorted({parse_path(p).index for p in client.source.paths
                   if p.startswith("tile/entries/")})


@pytest.fixture
def log(tmp_path: Path) -> Path:
    make_log(tmp_path / "log")
    return tmp_path / "log"


def test_first_run_then_only_new_bundles(log: Path) -> None:
    """Promise 5: the first audit reads every bundle; later ones only the new ones."""
    store = MemoryStateStore()
    grow(log, 1000)
    client = client_for(log)
    result = audit_log(client, store)
    assert result.ok and result.old_size is None and result.size == 1000
    assert bundles_read(client) == [0, 1, 2, 3]
    state = decode_state(store.states[ORIGIN], log_signer().verifier())
    assert state.size == 1000 and state.frontier.size == 1000

    grow(log, 700)
    client = client_for(log)
    result = audit_log(client, store)
    assert result.ok and (result.old_size, result.size) == (1000, 1700)
    assert bundles_read(client) == [3, 4, 5, 6]  # 3 held the partial bundle of size 1000

    client = client_for(log)
    result = audit_log(client, store)
    assert result.ok and (result.old_size, result.size) == (1700, 1700)
    assert client.source.paths == ["checkpoint"]  # type: ignore[attr-defined]


def test_aligned_sizes_and_empty_log(log: Path) -> None:
    """Promise 5: sizes 0, a whole bundle and a whole tile of tiles verify and resume."""
    store = MemoryStateStore()
    assert audit_log(client_for(log), store).ok
    for n in (TILE_WIDTH, TILE_WIDTH * TILE_WIDTH - TILE_WIDTH, 1):
        grow(log, n)
        result = audit_log(client_for(log), store)
        assert result.ok, result.reason
    assert result.size == TILE_WIDTH * TILE_WIDTH + 1


def test_quorum_of_cosignatures(log: Path) -> None:
    """Promise 5: the auditor requires its quorum of valid witness cosignatures."""
    signers = [witness_signer(0), witness_signer(1)]
    grow(log, 10, cosigners=signers)
    store = MemoryStateStore()
    result = audit_log(client_for(log, witnesses=2, quorum=2), store)
    assert result.ok and result.cosignatures == ("witness.test/w0", "witness.test/w1")
    assert result.warnings == ()
    grow(log, 5, cosigners=signers[:1])
    result = audit_log(client_for(log, witnesses=2, quorum=2), store)
    assert not result.ok and result.code == "witness_quorum_not_met"
    assert decode_state(store.states[ORIGIN], log_signer().verifier()).size == 10


def test_no_quorum_is_flagged(log: Path) -> None:
    """Promise 5: an audit without a witness quorum passes but is flagged."""
    grow(log, 3)
    result = audit_log(client_for(log), MemoryStateStore())
    assert result.ok and any("quorum" in w for w in result.warnings)
    assert any("no valid witness cosignature" in w for w in result.warnings)


def test_split_view_writes_evidence(tmp_path: Path) -> None:
    """Promise 5: state from branch A, checkpoint from branch B: evidence, no new state."""
    a, b = tmp_path / "a", tmp_path / "b"
    make_log(a)
    make_log(b)
    grow(a, 300, b"a")
    grow(b, 400, b"b")
    store = MemoryStateStore()
    assert audit_log(client_for(a), store).ok
    saved = store.states[ORIGIN]
    result = audit_log(client_for(b), store)
    assert not result.ok and result.code == "split_view" and result.index == 300
    assert result.evidence_file is not None
    view = verify_evidence(store.evidence[result.evidence_file])
    assert (view.older.checkpoint.size, view.newer.checkpoint.size) == (300, 400)
    assert store.states[ORIGIN] == saved


def test_same_size_split_view(tmp_path: Path) -> None:
    """Promise 5: two roots for one size are evidence by themselves."""
    a, b = tmp_path / "a", tmp_path / "b"
    make_log(a)
    make_log(b)
    grow(a, 7, b"a")
    grow(b, 7, b"b")
    store = MemoryStateStore()
    assert audit_log(client_for(a), store).ok
    result = audit_log(client_for(b), store)
    assert result.code == "split_view" and result.evidence_file is not None
    assert verify_evidence(store.evidence[result.evidence_file]).older.checkpoint.size == 7


def test_errors_that_are_not_verdicts(tmp_path: Path, log: Path) -> None:
    """A log never verified without a checkpoint, or a damaged state, raise (exit 2)."""
    with pytest.raises(NotFound):
        audit_log(client_for(tmp_path / "nothing"), MemoryStateStore())
    store = MemoryStateStore()
    store.states[ORIGIN] = b'{"type": "bordergate/audit-log-state/v1"}'
    with pytest.raises(ConfigError):
        audit_log(client_for(log), store)


def test_vanished_checkpoint_fails(log: Path) -> None:
    """Promise 5: a log verified before that stops publishing a checkpoint fails."""
    grow(log, 3)
    store = MemoryStateStore()
    assert audit_log(client_for(log), store).ok
    (log / "checkpoint").unlink()
    result = audit_log(client_for(log), store)
    assert not result.ok and result.code == "checkpoint_missing"


def test_an_unwitnessed_checkpoint_short_of_the_entry_is_not_published_yet(log: Path) -> None:
    """Promise 5 (CI flake of a monitor): a checkpoint short of the quorum that does not
    cover the size a monitor needs is "not published yet" (retry), never a verdict and never
    returned; one that covers it is still a verification failure."""
    from bordergate.errors import Unavailable, VerificationError

    grow(log, 5)
    client = client_for(log, witnesses=1, quorum=1)
    with pytest.raises(Unavailable) as waiting:
        client.checkpoint(covering=6)
    assert waiting.value.code == "checkpoint_not_witnessed_yet"
    with pytest.raises(VerificationError) as failed:
        client.checkpoint(covering=5)
    assert failed.value.code == "witness_quorum_not_met"
