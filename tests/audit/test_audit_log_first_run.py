"""`bordergate audit log` takes a first baseline only from a freshly witnessed checkpoint.

Found by a review: on a first run (no saved state) `audit log` accepted, and saved
as the baseline every later run compares against, a checkpoint its witnesses
cosigned days ago, though `audit run` reports such a checkpoint `checkpoint_stale`:
an old, honestly witnessed checkpoint taken before a violation passed as the
log's current state.  A first run now applies the same freshness rule, with
`--max-age` (default: the auditor file's `max_checkpoint_age_s` default), and
judges the very checkpoint it then verifies and saves.  Promise 5 (append-only
and witnessed).  Test-only keys.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bordergate.audit.commands import _first_run_baseline
from bordergate.audit.logcheck import audit_log
from bordergate.audit.logstate import MemoryStateStore
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.note import NoteSignature, add_signatures, note_signatures
from bordergate.tlog.storage import CHECKPOINT_PATH
from tests.audit.auditlogs import grow, witness_current
from tests.tlog.witnessed import TEST_ONLY_WITNESS_SEEDS, bordergate, log_signer, make_log

TWO_DAYS = 2 * 86400


def witnesses(at: int) -> list[CosignatureSigner]:
    """The two test witnesses, cosigning at POSIX time ``at``."""
    return [CosignatureSigner(f"witness.test/w{n}", TEST_ONLY_WITNESS_SEEDS[n], lambda: at)
            for n in (0, 1)]


def cosigned_log(root: Path, at: int) -> Path:
    log = root / "log"
    make_log(log)
    grow(log, 10)
    witness_current(log, witnesses(at))
    return log


def audit(log: Path, state: Path, *args: str) -> tuple[int, dict[str, object]]:
    keys = [a for w in witnesses(0) for a in ("--witness", w.verifier().key_string)]
    proc = bordergate("audit", "log", str(log), "--vkey", log_signer().verifier().key_string,
                      "--state", str(state), "--json", *keys, *args)
    assert proc.returncode in (0, 1), proc.stderr.decode()
    return proc.returncode, json.loads(proc.stdout)


def test_first_run_refuses_a_stale_checkpoint_as_baseline(tmp_path: Path) -> None:
    """Promise 5: a first `audit log` of a checkpoint its quorum cosigned two days ago
    fails `checkpoint_stale` (exit 1) and saves nothing; with a `--max-age` covering
    it, it verifies and saves the baseline; a later run, with saved state, needs no
    window (consistency with the saved checkpoint protects it)."""
    log, state = cosigned_log(tmp_path, int(time.time()) - TWO_DAYS), tmp_path / "state"
    code, out = audit(log, state)
    assert (code, out["ok"], out["code"]) == (1, False, "checkpoint_stale")
    assert "nothing saved" in str(out["reason"])
    assert not state.exists() or not any(state.iterdir())
    code, out = audit(log, state, "--max-age", str(3 * 86400))
    assert (code, out["ok"]) == (0, True) and any(state.iterdir())
    code, out = audit(log, state)
    assert (code, out["ok"]) == (0, True)


def test_first_run_accepts_a_freshly_witnessed_checkpoint(tmp_path: Path) -> None:
    """Promise 5: a checkpoint the quorum cosigned just now is a first baseline."""
    log, state = cosigned_log(tmp_path, int(time.time())), tmp_path / "state"
    code, out = audit(log, state)
    assert (code, out["ok"], out["size"]) == (0, True, 10)


class _FreshThenStale:
    """A log that shows the fresh checkpoint once, then the stale one."""

    def __init__(self, log: Path, fresh: bytes, stale: bytes) -> None:
        self.source, self.answers = DirectorySource(log), [fresh, stale]

    def fetch(self, path: str, limit: int) -> bytes | None:
        if path == CHECKPOINT_PATH:
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return self.source.fetch(path, limit)


def test_the_checkpoint_judged_fresh_is_the_one_saved(tmp_path: Path) -> None:
    """Promise 5: the first run judges one fetched checkpoint and verifies and saves
    that one: a log answering a fresh checkpoint to the freshness check and a stale
    one afterwards does not get the stale one saved as the baseline."""
    now = int(time.time())
    log = cosigned_log(tmp_path, now)
    fresh = (log / "checkpoint").read_bytes()
    text, (log_line, *_) = note_signatures(fresh)
    stale = add_signatures((text + "\n" + log_line.to_line()).encode(), [
        NoteSignature(w.name, w.key_id, w.sign_at(text.encode(), now - TWO_DAYS))
        for w in witnesses(0)])
    client = LogClient(_FreshThenStale(log, fresh, stale), log_signer().verifier(),
                       cosigners=[w.verifier() for w in witnesses(0)], quorum=2)
    store = MemoryStateStore()
    pinned, failed = _first_run_baseline(client, store, 3600)
    assert failed is None
    result = audit_log(pinned, store)
    assert result.ok and result.note == fresh
