"""The pipelined line feed behind ``bordergate log append`` (issue 16 item 6).

Promise 5 for a pipelined writer: every line becomes exactly one entry, in
order, whatever the read block and chunk sizes; a refused entry stops the feed,
what was submitted before it is durable and counted, and the command exits
non-zero after publishing only what is in the log.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.line_feed import feed_lines
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage.memory import MemoryStorage
from tests.tlog.memory_log import fixed_log_signer

BIN = Path(sys.executable).parent / "bordergate"


def _entries(storage: MemoryStorage, size: int) -> list[bytes]:
    signer = fixed_log_signer()
    client = LogClient(StorageSource(storage), signer.verifier())
    return [client.entry(i, size) for i in range(size)]


@pytest.mark.parametrize(("block", "chunk", "ahead"), [(1, 1, 1), (7, 3, 5), (4096, 50, 100)],
                         ids=["byte-by-byte", "lines-span-blocks", "large"])
def test_every_line_is_one_entry_in_order(block: int, chunk: int, ahead: int) -> None:
    """Lines that span read blocks and chunks, empty lines and a last line without a
    newline each become one entry, in stream order, all durable and published."""
    lines = [b"first", b"", b"x" * 300, *(b"entry %d" % i for i in range(230)), b"last"]
    storage = MemoryStorage()
    create_log(storage, fixed_log_signer())
    with Sequencer(storage, fixed_log_signer()) as seq:
        fed = feed_lines(seq, io.BytesIO(b"\n".join(lines)), chunk=chunk, ahead=ahead,
                         block=block)
        size = seq.publish(10).checkpoint.size
    assert (fed.appended, fed.failed, fed.error) == (len(lines), 0, None)
    assert size == len(lines)
    assert _entries(storage, size) == lines


def test_a_refused_entry_stops_the_feed_and_keeps_what_was_durable() -> None:
    """An entry over 65,535 bytes is refused (entry_too_large): the chunks submitted
    before it are durable and counted, nothing after it is appended."""
    good = [b"ok %d" % i for i in range(10)]
    stream = io.BytesIO(b"\n".join([*good, b"y" * 70_000, b"after"]) + b"\n")
    storage = MemoryStorage()
    create_log(storage, fixed_log_signer())
    with Sequencer(storage, fixed_log_signer()) as seq:
        fed = feed_lines(seq, stream, chunk=5)
        size = seq.publish(10).checkpoint.size
    assert fed.error is not None and fed.error.code == "entry_too_large"
    assert (fed.appended, size) == (10, 10)
    assert _entries(storage, size) == good


def test_the_command_exits_non_zero_when_an_entry_is_refused(tmp_path: Path) -> None:
    """`log append` publishes what was durable, says how much, and exits 2 (not 0) when
    an entry of its stdin was refused."""
    log = tmp_path / "log"
    subprocess.run([str(BIN), "log", "init", str(log), "--origin", "feed.test/log"],
                   capture_output=True, check=True, timeout=120)
    stdin = b"a\nb\n" + b"z" * 70_000 + b"\nc\n"
    proc = subprocess.run([str(BIN), "log", "append", str(log)], input=stdin,
                          capture_output=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert b"error [entry_too_large]" in proc.stderr and b"log size 0" in proc.stderr
    assert proc.stdout == b""
