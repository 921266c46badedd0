"""A test-only in-memory log: leaves, signed checkpoints and consistency proofs.

Used by the witness and evidence tests to play an honest log, or a forked one
(two ``MemoryLog`` objects with the same key and diverging entries).  The keys
come from fixed seeds and are for tests only.
"""

from __future__ import annotations

from bordergate.tlog.checkpoint import Checkpoint, sign_checkpoint
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.merkle import consistency_proof, leaf_hash, node_hash, root_from_leaf_hashes
from bordergate.tlog.note import Signer

# TEST-ONLY seeds; never use these keys outside tests.
TEST_ONLY_LOG_SEED = bytes([1] * 32)
TEST_ONLY_OTHER_LOG_SEED = bytes([2] * 32)
TEST_ONLY_WITNESS_SEED = bytes([3] * 32)
ORIGIN = "log.test/witnessed"
WITNESS_NAME = "witness.test/w1"
FIXED_TIME = 1_700_000_000


def fixed_log_signer(origin: str = ORIGIN, seed: bytes = TEST_ONLY_LOG_SEED) -> Signer:
    """The test-only log key (fixed seed)."""
    return Signer.from_seed(origin, seed)


def fixed_witness_signer() -> CosignatureSigner:
    """The test-only witness key (fixed seed, fixed clock)."""
    return CosignatureSigner(WITNESS_NAME, TEST_ONLY_WITNESS_SEED, lambda: FIXED_TIME)


class MemoryLog:
    """Leaves in memory; roots, signed checkpoints and proofs for any size."""

    def __init__(self, signer: Signer, entries: list[bytes] | None = None) -> None:
        """A log signed by ``signer`` (its name is the origin)."""
        self.signer = signer
        self.hashes = [leaf_hash(e) for e in entries or []]

    def fork(self, size: int, tag: bytes) -> MemoryLog:
        """A second history: the first ``size`` entries, then entries marked ``tag``."""
        other = MemoryLog(self.signer)
        other.hashes = self.hashes[:size]
        return other.append_n(0, tag)

    def append_n(self, count: int, tag: bytes = b"entry") -> MemoryLog:
        """Append ``count`` distinct entries; returns self."""
        start = len(self.hashes)
        self.hashes += [leaf_hash(tag + b"-%d" % (start + i)) for i in range(count)]
        return self

    def root(self, size: int) -> bytes:
        """The root of the first ``size`` leaves."""
        return root_from_leaf_hashes(self.hashes[:size])

    def checkpoint(self, size: int | None = None) -> bytes:
        """The signed checkpoint note at ``size`` (default: the whole log)."""
        size = len(self.hashes) if size is None else size
        return sign_checkpoint(Checkpoint(self.signer.name, size, self.root(size)), self.signer)

    def node(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree ``(level, index)``."""
        hashes = self.hashes[index << level : (index + 1) << level]
        while len(hashes) > 1:
            hashes = [node_hash(a, b) for a, b in zip(hashes[::2], hashes[1::2], strict=True)]
        return hashes[0]

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        """The consistency proof from ``old`` to ``new`` (empty from size 0)."""
        new = len(self.hashes) if new is None else new
        return [] if old == 0 else consistency_proof(old, new, self.node)
