"""The log gathers witness cosignatures before publishing (promise 5: witnessed).

The first tests drive :class:`WitnessQuorum` against real :class:`Witness`
objects (in-memory state) behind an httpx transport, to pin the protocol
details: old sizes, 409 re-sends, quorum, merge order.  The last ones run
real processes on loopback: two `bordergate witness serve` and
`bordergate log append --witness ...`, checked with the independent C2SP
reader; and a forked log refused by a witness that saw the other branch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.errors import BordergateError, ConfigError, Unavailable
from bordergate.tlog.checkpoint import open_checkpoint
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.evidence import verify_evidence
from bordergate.tlog.sequencer import Sequencer, SequencerConfig
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tlog.witness import MemoryWitnessState, SizeMismatch, Witness, status_for
from bordergate.tlog.witnessing import (
    WitnessEndpoint,
    WitnessQuorum,
    parse_witness_option,
    witness_endpoint,
)
from tests.independent import c2sp
from tests.tlog.witnessed import (
    WitnessServer,
    bordergate,
    free_port,
    log_signer,
    make_log,
    witness_signer,
)

FIXED_TIME = 1_700_000_000


class WitnessTwin:
    """A real Witness with in-memory state, reachable through an httpx transport."""

    def __init__(self, number: int, *, up: bool = True) -> None:
        self.signer = CosignatureSigner.from_key_string(witness_signer(number).key_string,
                                                        lambda: FIXED_TIME)
        self.witness = Witness(self.signer, {log_signer().name: [log_signer().verifier()]},
                               MemoryWitnessState())
        self.url = f"http://w{number}.test/add-checkpoint"
        self.endpoint = WitnessEndpoint(self.url, self.signer.verifier())
        self.old_sizes: list[int] = []
        self.up = up

    def handle(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("witness down", request=request)
        body = request.read()
        self.old_sizes.append(int(body.split(b"\n", 1)[0][4:]))
        try:
            lines = self.witness.add_checkpoint(body)
        except SizeMismatch as exc:
            return httpx.Response(409, content=f"{exc.size}\n".encode(),
                                  headers={"content-type": "text/x.tlog.size"})
        except BordergateError as exc:
            return httpx.Response(status_for(exc), content=f"{exc.code}: {exc}\n".encode())
        return httpx.Response(200, content=lines)


def transport(*twins: WitnessTwin) -> httpx.Client:
    by_host = {httpx.URL(t.url).host: t for t in twins}
    return httpx.Client(transport=httpx.MockTransport(
        lambda request: by_host[request.url.host].handle(request)))


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[FileStorage]:
    make_log(tmp_path / "log")
    store = FileStorage(tmp_path / "log")
    yield store
    store.close()


def run_log(storage: FileStorage, quorum: WitnessQuorum, batches: list[int]) -> list[bytes]:
    """Append batches, publishing after each; returns the published notes."""
    notes = []
    config = SequencerConfig(checkpoint_interval=0.05)
    with Sequencer(storage, log_signer(), config=config, witnessing=quorum) as seq:
        for n in batches:
            seq.append_many([b"entry %d" % i for i in range(seq.size, seq.size + n)])
            notes.append(seq.publish(timeout=10).note)
    return notes


def test_quorum_cosigns_and_tracks_sizes(storage: FileStorage) -> None:
    """Promise 5: each checkpoint carries both cosignatures; old sizes follow each witness."""
    a, b = WitnessTwin(0), WitnessTwin(1)
    quorum = WitnessQuorum([a.endpoint, b.endpoint], 2, client=transport(a, b))
    notes = run_log(storage, quorum, [5, 3, 300])
    for note in notes:
        signed = open_checkpoint(note, log_signer().verifier(),
                                 cosigners=[a.endpoint.verifier, b.endpoint.verifier])
        assert [c.name for c in signed.cosignatures] == ["witness.test/w0", "witness.test/w1"]
    assert a.old_sizes == [0, 5, 8] and b.old_sizes == [0, 5, 8]
    assert quorum.cosigned_size(a.endpoint) == 308
    assert storage.read("checkpoint") == notes[-1]


def test_409_resends_from_the_witness_size(storage: FileStorage) -> None:
    """Promise 5: a witness that cosigned before answers 409 with its size; the log re-sends."""
    a = WitnessTwin(0)
    run_log(storage, WitnessQuorum([a.endpoint], 1, client=transport(a)), [7])
    fresh = WitnessQuorum([a.endpoint], 1, client=transport(a))  # a restarted log process
    notes = run_log(storage, fresh, [2])
    assert a.old_sizes == [0, 0, 7]
    assert open_checkpoint(notes[0], log_signer().verifier(),
                           cosigners=[a.endpoint.verifier]).cosignatures


def test_short_of_quorum_publishes_nothing(storage: FileStorage) -> None:
    """Promise 5: short of the quorum nothing is published; once a witness is back, it is."""
    a, b = WitnessTwin(0), WitnessTwin(1, up=False)
    quorum = WitnessQuorum([a.endpoint, b.endpoint], 2, client=transport(a, b), timeout=2)
    with Sequencer(storage, log_signer(), config=SequencerConfig(checkpoint_interval=0.05),
                   witnessing=quorum) as seq:
        seq.append_many([b"one", b"two"])
        with pytest.raises(Unavailable):
            seq.publish(timeout=1)
        assert open_checkpoint(storage.read("checkpoint") or b"",
                               log_signer().verifier()).checkpoint.size == 0
        assert "witness_unavailable" in quorum.last_failures["witness.test/w1"]
        b.up = True
        note = seq.publish(timeout=10).note
    signed = open_checkpoint(note, log_signer().verifier(),
                             cosigners=[a.endpoint.verifier, b.endpoint.verifier])
    assert signed.checkpoint.size == 2 and len(signed.cosignatures) == 2


def test_quorum_zero_publishes_and_warns(storage: FileStorage,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """Promise 5 (development setting): quorum 0 publishes uncosigned and says so."""
    with caplog.at_level(logging.WARNING, logger="bordergate.tlog.witnessing"):
        notes = run_log(storage, WitnessQuorum([], 0), [3])
    assert open_checkpoint(notes[0], log_signer().verifier()).cosignatures == ()
    assert "quorum 0" in caplog.text


def test_quorum_zero_still_collects_reachable_cosignatures(storage: FileStorage) -> None:
    """Promise 5: with quorum 0, a reachable witness still cosigns; a dead one does not block."""
    a, b = WitnessTwin(0), WitnessTwin(1, up=False)
    notes = run_log(storage, WitnessQuorum([a.endpoint, b.endpoint], 0,
                                           client=transport(a, b)), [4])
    signed = open_checkpoint(notes[0], log_signer().verifier(),
                             cosigners=[a.endpoint.verifier, b.endpoint.verifier])
    assert [c.name for c in signed.cosignatures] == ["witness.test/w0"]


def test_configuration_errors() -> None:
    """Bad witness options and quorums are configuration errors, not crashes."""
    vkey = witness_signer(0).verifier().key_string
    endpoint = parse_witness_option("http://127.0.0.1:9/=" + vkey)
    assert endpoint.url == "http://127.0.0.1:9/add-checkpoint"
    assert parse_witness_option(f"http://h/x?a=b/add-checkpoint={vkey}").url == \
        "http://h/x?a=b/add-checkpoint"
    for bad in ("nokey", f"ftp://h={vkey}", "http://h=" + vkey[:-2],
                "http://h=" + log_signer().verifier().key_string):
        with pytest.raises(ConfigError):
            parse_witness_option(bad)
    with pytest.raises(ConfigError, match="quorum"):
        WitnessQuorum([endpoint], 2)
    with pytest.raises(ConfigError, match="twice"):
        WitnessQuorum([endpoint, endpoint], 1)


# -- real processes on loopback ------------------------------------------------------------


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[list[WitnessServer]]:
    servers = [WitnessServer(tmp_path, n, [log_signer()]).start() for n in (0, 1)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def append(log: Path, lines: list[bytes], *args: str) -> tuple[int, str]:
    proc = bordergate("log", "append", str(log), *args, stdin=b"\n".join(lines) + b"\n")
    return proc.returncode, (proc.stdout + proc.stderr).decode()


def test_two_witness_processes_cosign_log_append(tmp_path: Path,
                                                 witnesses: list[WitnessServer]) -> None:
    """Promise 5: `log append --witness` x2 publishes checkpoints both witnesses cosigned,
    checked with the independent cosignature/v1 reader."""
    log = tmp_path / "log"
    make_log(log)
    options = [arg for w in witnesses for arg in ("--witness", w.option)]
    for round_ in range(3):  # each run is a new process: old sizes come back through 409
        code, out = append(log, [b"e%d-%d" % (round_, i) for i in range(100 + round_)],
                           *options)
        assert code == 0, out
        note = (log / "checkpoint").read_bytes()
        vkey = log_signer().verifier().key_string
        c2sp.verify_note(note, vkey)
        stamps = [c2sp.verify_cosignature(note, w.verifier.key_string) for w in witnesses]
        assert all(s > 1_600_000_000 for s in stamps)
    verified = c2sp.verify_log_dir(log, vkey)
    assert verified.size == 100 + 101 + 102
    client = LogClient(DirectorySource(log), log_signer().verifier(),
                       cosigners=[w.verifier for w in witnesses], quorum=2)
    assert client.rebuild(client.checkpoint()).size == 303


def test_dead_witness_blocks_publication_at_quorum(tmp_path: Path,
                                                   witnesses: list[WitnessServer]) -> None:
    """Promise 5: short of the quorum `log append` publishes nothing (exit 3, unavailable:
    retry); with the
    quorum reachable the durable entries are published, cosigned."""
    log = tmp_path / "log"
    make_log(log)
    dead = f"http://127.0.0.1:{free_port()}={witness_signer(2).verifier().key_string}"
    code, out = append(log, [b"a", b"b"], "--witness", witnesses[0].option, "--witness", dead,
                       "--quorum", "2", "--publish-timeout", "3")
    assert code == 3 and "witness.test/w2" in out, out
    before = open_checkpoint((log / "checkpoint").read_bytes(), log_signer().verifier())
    assert before.checkpoint.size == 0
    code, out = append(log, [b"c"], "--witness", witnesses[0].option, "--witness", dead,
                       "--quorum", "1")
    assert code == 0 and out.startswith("3"), out
    c2sp.verify_cosignature((log / "checkpoint").read_bytes(), witnesses[0].verifier.key_string)


def test_quorum_zero_cli_warns(tmp_path: Path) -> None:
    """Promise 5 (development setting): `--quorum 0` publishes without witnesses, with a warning."""
    log = tmp_path / "log"
    make_log(log)
    code, out = append(log, [b"x"], "--quorum", "0")
    assert code == 0 and "quorum 0" in out, out


def test_witness_that_saw_one_branch_refuses_the_fork(tmp_path: Path,
                                                      witnesses: list[WitnessServer]) -> None:
    """Promise 5: two histories under one key; the witness that cosigned branch A refuses
    branch B, keeps A, and writes split-view evidence that verifies offline."""
    a, b = tmp_path / "a", tmp_path / "b"
    make_log(a)
    make_log(b)
    witness = witnesses[0]
    code, out = append(a, [b"a%d" % i for i in range(10)], "--witness", witness.option)
    assert code == 0, out
    cosigned_a = (a / "checkpoint").read_bytes()
    code, out = append(b, [b"b%d" % i for i in range(12)], "--witness", witness.option,
                       "--publish-timeout", "3")
    assert code == 3 and "0 of 1 required" in out and "consistency_failed" in out, out
    assert open_checkpoint((b / "checkpoint").read_bytes(),
                           log_signer().verifier()).checkpoint.size == 0
    # the witness still stands by branch A
    code, out = append(a, [b"a10"], "--witness", witness.option)
    assert code == 0, out
    c2sp.verify_cosignature((a / "checkpoint").read_bytes(), witness.verifier.key_string)
    files = sorted(witness.evidence.glob("*.json"))
    assert files, "the witness wrote no evidence"
    view = verify_evidence(files[0].read_bytes())
    assert view.older.checkpoint == open_checkpoint(cosigned_a,
                                                    log_signer().verifier()).checkpoint
    proc = bordergate("audit", "evidence", str(files[0]))
    assert proc.returncode == 0 and b"SPLIT VIEW PROVEN" in proc.stdout


def test_quorum_zero_does_not_wait_for_a_hanging_witness(storage: FileStorage) -> None:
    """Promise 5 (development setting): with quorum 0 a witness that never answers does not
    hold publication back (the quorum timeout here is far beyond the publish timeout)."""
    release = threading.Event()

    def hang(request: httpx.Request) -> httpx.Response:
        release.wait(60)
        return httpx.Response(503)

    endpoint = WitnessTwin(0).endpoint
    quorum = WitnessQuorum([endpoint], 0, timeout=60,
                           client=httpx.Client(transport=httpx.MockTransport(hang)))
    try:
        notes = run_log(storage, quorum, [2])
    finally:
        release.set()
        quorum.close()
    assert open_checkpoint(notes[0], log_signer().verifier()).checkpoint.size == 2
    assert quorum.last_failures == {"witness.test/w0": "no answer in time"}


def test_deployment_witnesses_reach_the_gateway_sequencer(tmp_path: Path) -> None:
    """Promise 5: witnesses and quorum from the deployment file become the gateway's
    WitnessQuorum (the one every writer uses); none configured means no witnessing;
    witnesses without a quorum need every one of them."""
    from bordergate.config import parse_config
    from bordergate.log_witnessing import log_witnessing
    from tests.test_config import GOOD

    def _witnessing(j: Any) -> WitnessQuorum | None:
        return log_witnessing(j.log)

    assert _witnessing(parse_config(GOOD, base_dir=tmp_path).jurisdiction("us")) is None
    vkeys = [witness_signer(n).verifier().key_string for n in (0, 1)]
    text = GOOD + "quorum = 1\nwitnesses = [" + ", ".join(
        f'{{url = "http://127.0.0.1:{9100 + n}", vkey = "{v}"}}'
        for n, v in enumerate(vkeys)) + "]\n"
    quorum = _witnessing(parse_config(text, base_dir=tmp_path).jurisdiction("us"))
    assert quorum is not None and quorum.quorum == 1
    assert [w.url for w in quorum.witnesses] == ["http://127.0.0.1:9100/add-checkpoint",
                                                 "http://127.0.0.1:9101/add-checkpoint"]
    quorum.close()
    every = _witnessing(parse_config(text.replace("quorum = 1\n", ""), base_dir=tmp_path)
                        .jurisdiction("us"))
    assert every is not None and every.quorum == 2
    every.close()
    endpoint = witness_endpoint("https://w.example/prefix/", vkeys[0])
    assert endpoint.url == "https://w.example/prefix/add-checkpoint"
    with pytest.raises(ConfigError):
        witness_endpoint("w.example", vkeys[0])


def test_idle_checkpoint_is_cosigned_again(storage: FileStorage) -> None:
    """Promise 5: an idle log's unchanged checkpoint is sent to its witnesses again after
    ``refresh_interval`` (old size = size, empty proof), so its cosignatures stay fresh
    for first audits; the republished note keeps the same tree."""
    a = WitnessTwin(0)
    ticks = iter(range(FIXED_TIME, FIXED_TIME + 10_000))
    a.signer.clock = lambda: next(ticks)
    config = SequencerConfig(checkpoint_interval=0.05, refresh_interval=0.1)
    with Sequencer(storage, log_signer(), config=config,
                   witnessing=WitnessQuorum([a.endpoint], 1, client=transport(a))) as seq:
        seq.append_many([b"one", b"two"])
        first = seq.publish(timeout=10)
        for _ in range(400):  # up to 20 s
            if a.old_sizes.count(2) >= 2:
                break
            threading.Event().wait(0.05)
        latest = open_checkpoint(storage.read("checkpoint") or b"", log_signer().verifier(),
                                 cosigners=[a.endpoint.verifier])
    assert a.old_sizes[:2] == [0, 2]  # sent again from its own size: nothing new
    assert latest.checkpoint == first.checkpoint
    assert latest.cosignatures[0].timestamp > FIXED_TIME


def test_publish_names_the_missing_witness_quorum(storage: FileStorage) -> None:
    """Promise 5: a writer waiting for a checkpoint that no witness quorum cosigns is told
    why (``witness_quorum_unavailable``), and nothing uncosigned is published."""
    down = WitnessTwin(0, up=False)
    quorum = WitnessQuorum([down.endpoint], 1, client=transport(down), timeout=0.2)
    with Sequencer(storage, log_signer(), config=SequencerConfig(checkpoint_interval=0.05),
                   witnessing=quorum) as seq:
        seq.append_many([b"one"])
        with pytest.raises(Unavailable) as refused:
            seq.publish(timeout=3)
    assert refused.value.code == "witness_quorum_unavailable"
    assert open_checkpoint(storage.read("checkpoint") or b"",
                           log_signer().verifier()).checkpoint.size == 0


def test_sequencer_service_refuses_to_publish_unwitnessed(tmp_path: Path) -> None:
    """Promise 5: `bordergate log sequencer` without a witness quorum does not start (it
    would publish uncosigned checkpoints) unless --unwitnessed says so; the stand-alone
    `log append` quick start publishes uncosigned with a warning."""
    log = tmp_path / "log"
    make_log(log)
    appenders = str(tmp_path / "appenders.txt")
    proc = bordergate("log", "sequencer", str(log), "--credentials", appenders,
                      "--port", str(free_port()), timeout=60)
    assert proc.returncode == 2 and b"witness_quorum_required" in proc.stderr
    proc = bordergate("log", "sequencer", str(log), "--credentials", appenders,
                      "--witness", f"http://127.0.0.1:9={witness_signer(0).verifier().key_string}",
                      "--quorum", "0", "--port", str(free_port()), timeout=60)
    assert proc.returncode == 2 and b"witness_quorum_required" in proc.stderr
    code, out = append(log, [b"x"])
    assert code == 0 and "without witness cosignatures" in out, out
