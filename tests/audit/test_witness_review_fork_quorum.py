"""Review: what a met witness quorum tells a first-time auditor, and what it does not.

An honest witness refuses a second history only if it saw the first.  A log
operator holding the log key shows one history (branch A) to some witnesses and
another (branch B, same size, other entries) to the others from the start, so
no witness ever sees both: each honest witness cosigns its branch.  Two
first-time auditors trusting the same two witnesses with quorum 1 each accept a
different history, both witnessed and fresh (real ``bordergate witness serve``
processes, ``bordergate log append`` and ``bordergate audit log``).  Two quorums
of ``q`` among ``n`` witnesses share ``2q - n`` of them: the auditor now says so
(``fork_needs_colluding_witnesses``, a warning from ``audit log`` when the log
operator alone suffices), and a quorum of all witnesses refuses both branches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bordergate.audit.witness_check import check_witnesses, witness_summary
from bordergate.tlog.checkpoint import open_checkpoint
from bordergate.tlog.note import NoteSignature, add_signatures
from tests.tlog.witnessed import WitnessServer, bordergate, log_signer, make_log, witness_signer


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[list[WitnessServer]]:
    servers = [WitnessServer(tmp_path, n, [log_signer()]).start() for n in (0, 1)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def branch(tmp: Path, name: str, witness: WitnessServer, tag: bytes) -> Path:
    """A log directory under the one log key, its checkpoint cosigned by ``witness`` only."""
    log = tmp / name
    make_log(log)
    lines = b"".join(tag + b" %d\n" % i for i in range(5))
    proc = bordergate("log", "append", str(log), "--witness", witness.option, stdin=lines)
    assert proc.returncode == 0, proc.stderr
    return log


def first_audit(log: Path, state: Path, servers: list[WitnessServer], quorum: int
                ) -> dict[str, object]:
    args = ["audit", "log", str(log), "--vkey", log_signer().verifier().key_string,
            "--state", str(state), "--quorum", str(quorum), "--json"]
    for server in servers:
        args += ["--witness", server.verifier.key_string]
    result: dict[str, object] = json.loads(bordergate(*args).stdout)
    return result


def test_a_quorum_of_half_the_witnesses_is_said_not_to_rule_out_a_fork(
        tmp_path: Path, witnesses: list[WitnessServer]) -> None:
    """Quorum 1 of 2: the log operator alone gets two different histories of size 5 each
    cosigned by an honest witness, and two first-time auditors each verify one; each is
    warned that its quorum cannot show the history is the log's only one (it used to say
    nothing).  With quorum 2 of 2 neither branch verifies."""
    a = branch(tmp_path, "a", witnesses[0], b"honest")
    b = branch(tmp_path, "b", witnesses[1], b"rewritten")
    seen = [first_audit(log, tmp_path / f"state-{log.name}", witnesses, 1) for log in (a, b)]
    assert [r["ok"] for r in seen] == [True, True]
    assert seen[0]["size"] == seen[1]["size"] == 5 and seen[0]["root"] != seen[1]["root"]
    for result in seen:
        warnings = result["warnings"]
        assert isinstance(warnings, list)
        assert any("the log operator alone" in w for w in warnings), warnings
    for log in (a, b):
        strict = first_audit(log, tmp_path / f"strict-{log.name}", witnesses, 2)
        assert (strict["ok"], strict["code"]) == (False, "witness_quorum_not_met")


def test_the_report_says_how_many_witnesses_a_fork_needs(tmp_path: Path,
                                                         witnesses: list[WitnessServer]
                                                         ) -> None:
    """The witness check of ``audit run`` (its report and one-line summary) names how many
    trusted witnesses a fork meeting its quorum needs: none for 1 of 2, one for 2 of 3 (a
    witness below the quorum: w2 here, colluding, cosigns what it is shown), every quorum
    witness for a quorum of all; a met quorum below all says it does not rule out a fork."""
    a = branch(tmp_path, "a", witnesses[0], b"honest")
    note = (a / "checkpoint").read_bytes()
    colluding = witness_signer(2)  # cosigns whatever the log operator shows it
    text = note[:note.rindex(b"\n\n") + 1]
    cosigned = add_signatures(note, [NoteSignature(colluding.name, colluding.key_id,
                                                   colluding.sign(text))])
    now = time.time()
    for (quorum, count), colluders in {(1, 2): 0, (2, 3): 1, (2, 2): 2}.items():
        trusted = [witness_signer(n).verifier() for n in range(count)]
        signed = open_checkpoint(cosigned, log_signer().verifier(), cosigners=trusted)
        check = check_witnesses(signed, trusted=trusted, quorum=quorum, now=now)
        report = {"witnesses": check.to_json()}
        assert report["witnesses"]["fork_needs_colluding_witnesses"] == colluders
        caveat = "does not show that this is the log's only history"
        if quorum == count:
            assert caveat not in check.explanation
            continue
        assert check.finding is None, check.explanation
        assert caveat in check.explanation
        who = "no colluding witness" if colluders == 0 else f"only {colluders} colluding"
        assert who in witness_summary(report), witness_summary(report)
