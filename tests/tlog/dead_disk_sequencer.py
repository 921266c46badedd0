"""TEST-ONLY launcher: a real log operator whose disk dies while a file exists.

Usage: python -m tests.tlog.dead_disk_sequencer FAULT_FILE ARGS...

It runs ``bordergate log sequencer ARGS...`` exactly as the command does,
except that the log's storage is wrapped from the outside by
:class:`tests.gateway.dead_disk_gateway.DeadDiskStorage`, which refuses every
write while FAULT_FILE exists (the suite runs as root: a read-only directory
would not stop the writes, so the fault is injected here, never in ``src/``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bordergate import log_operator
from bordergate.cli import main
from bordergate.tlog.storage import LogStorage
from tests.gateway.dead_disk_gateway import DeadDiskStorage

if __name__ == "__main__":
    fault = Path(sys.argv[1])
    opened = log_operator._SequencerPlace.open_storage

    def open_dying(place: log_operator._SequencerPlace) -> LogStorage:
        return DeadDiskStorage(opened(place), fault)  # type: ignore[return-value]

    log_operator._SequencerPlace.open_storage = open_dying  # type: ignore[method-assign]
    sys.argv = ["bordergate", "log", "sequencer", *sys.argv[2:]]
    main()
