"""TEST-ONLY child process for the crash test: append forever until killed.

Usage: python -m tests.tlog.crash_writer LOG_DIR ACK_FILE SEED
Entry ``i`` of the log is always ``entry_bytes(seed, i)``, so the parent can
check every acknowledged index for its exact bytes.  After each acknowledged
batch it appends ``first count`` to ACK_FILE with a plain write (the page cache
survives SIGKILL of this process, which is the crash being tested).
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from pathlib import Path

from bordergate.tlog.sequencer import Sequencer, SequencerConfig
from bordergate.tlog.storage.fs import FileStorage
from tests.tlog.logkeys import log_signer


def entry_bytes(seed: int, index: int) -> bytes:
    """The deterministic entry at ``index`` (varied lengths, up to 700 bytes)."""
    h = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return h * (h[0] % 22)


def main() -> None:
    log_dir, ack_file, seed = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    rng = random.Random(os.getpid())
    cfg = SequencerConfig(checkpoint_interval=0.02, max_batch=rng.choice([7, 300, 5000]))
    seq = Sequencer(FileStorage(log_dir), log_signer(), config=cfg)
    seq.start()
    fd = os.open(ack_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    while True:
        n = rng.choice([1, 3, 255, 256, 257, 1000, 4000])
        first = seq.size
        futures = []
        for chunk_start in range(first, first + n, 500):
            chunk = range(chunk_start, min(first + n, chunk_start + 500))
            futures.append(seq.submit([entry_bytes(seed, i) for i in chunk]))
        for f in futures:
            f.result()
        os.write(fd, f"{first} {n}\n".encode())


if __name__ == "__main__":
    main()
