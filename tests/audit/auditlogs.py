"""TEST-ONLY helpers for the auditor's tests: grow real logs in directories.

Logs are written by the real :class:`Sequencer` into :class:`FileStorage`;
"cosigned" logs get cosignature/v1 signatures from fixed-seed test witness
keys (real Ed25519, no witness server: the auditor is under test here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from bordergate.tlog.checkpoint import Checkpoint
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.note import NoteSignature, add_signatures, note_signatures
from bordergate.tlog.sequencer import Sequencer, SequencerConfig
from bordergate.tlog.storage import CHECKPOINT_PATH
from bordergate.tlog.storage.fs import FileStorage
from tests.tlog.witnessed import log_signer, witness_signer

ENTRY_LENGTH = 40


def entry(tag: bytes, index: int) -> bytes:
    """A fixed-length test entry (ENTRY_LENGTH bytes)."""
    return (tag + b"-%08d-" % index).ljust(ENTRY_LENGTH, b".")


class FixedCosigners:
    """Cosigns every checkpoint with fixed test witness keys (a CheckpointWitnessing)."""

    def __init__(self, signers: Sequence[CosignatureSigner]) -> None:
        self.signers = list(signers)

    def cosign(self, note: bytes, checkpoint: Checkpoint,
               prove: Callable[[int], list[bytes]]) -> bytes:
        text = checkpoint.to_text().encode()
        return add_signatures(note, [NoteSignature(s.name, s.key_id, s.sign(text))
                                     for s in self.signers])


def scenario_witnesses() -> list[CosignatureSigner]:
    """The two fixed-seed witnesses the audit scenarios' auditors trust (TEST-ONLY)."""
    return [witness_signer(0), witness_signer(1)]


def auditor_witness_lines(quorum: int = 2) -> str:
    """The ``witnesses``/``quorum`` lines of an auditor's ``[logs.X]`` trusting them."""
    keys = ", ".join(f'"{w.verifier().key_string}"' for w in scenario_witnesses())
    return f"witnesses = [{keys}]\nquorum = {quorum}\n"


def witness_current(log: Path, cosigners: Sequence[CosignatureSigner] | None = None) -> None:
    """Have the test witnesses cosign the log's current checkpoint now, as live witnesses
    that saw it grow would (the writer must be closed)."""
    storage = FileStorage(log)
    try:
        note = storage.read(CHECKPOINT_PATH)
        assert note is not None
        text, _ = note_signatures(note)
        cosigned = FixedCosigners(scenario_witnesses() if cosigners is None else cosigners
                                  ).cosign(note, Checkpoint.parse(text), lambda _: [])
        storage.publish_checkpoint(cosigned)
    finally:
        storage.close()


def grow(log: Path, count: int, tag: bytes = b"e",
         cosigners: Sequence[CosignatureSigner] = ()) -> bytes:
    """Append ``count`` entries to the log in ``log`` and publish; returns the checkpoint."""
    storage = FileStorage(log)
    try:
        witnessing = FixedCosigners(cosigners) if cosigners else None
        with Sequencer(storage, log_signer(), config=SequencerConfig(checkpoint_interval=0.05),
                       witnessing=witnessing) as seq:
            start = seq.size
            if count:
                seq.append_many([entry(tag, i) for i in range(start, start + count)])
            return seq.publish(timeout=30).note
    finally:
        storage.close()


def append_witnessed(log: Path, entries: Sequence[bytes]) -> None:
    """Append ``entries`` (any bytes) to the log in ``log``, publish, and have the test
    witnesses cosign its checkpoint now (:func:`witness_current`)."""
    storage = FileStorage(log)
    try:
        with Sequencer(storage, log_signer(), config=SequencerConfig(checkpoint_interval=0.05)
                       ) as seq:
            seq.append_many(list(entries))
            seq.publish(timeout=30)
    finally:
        storage.close()
    witness_current(log)


def us_auditor_config(path: Path, location: Path | str) -> Path:
    """Write an auditor's file at ``path`` for the us log at ``location`` (a directory
    or a URL), trusting the test witnesses (:func:`auditor_witness_lines`, quorum 2);
    returns ``path``."""
    path.write_text(f"""[auditor]
name = "TEST auditor"

[logs.us]
location = "{location}"
vkey = "{log_signer().verifier().key_string}"
{auditor_witness_lines()}""")
    return path


def roster_auditor_config(path: Path, log_dir: Path, authority_key: str) -> Path:
    """Write an auditor's file for the us log in ``log_dir`` at ``path``, trusting the
    first test witness (quorum 1) and the identity authority's ``authority_key``
    (TEST-ONLY); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""[auditor]
name = "TEST auditor"

[logs.us]
location = "{log_dir}"
vkey = "{log_signer().verifier().key_string}"
witnesses = ["{witness_signer(0).verifier().key_string}"]
quorum = 1
roster_authority = ["{authority_key}"]
""")
    return path
