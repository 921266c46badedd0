"""A hostile log server for the audit-input review tests (test-only, its own process).

``python -m tests.audit.audit_inputs_review_server LOG_DIR MODE PATH`` serves
``LOG_DIR`` over HTTP on a free loopback port, prints the port on one line, and
answers requests for ``PATH`` (``*``: every path) the hostile way ``MODE`` names:

* ``drip``: a 200 whose body comes one byte every 0.2 s, for ever (slowloris);
* ``drip-headers``: a status line, then header bytes one every 0.2 s, for ever;
* ``endless``: a 200 without a length whose body never ends, as fast as it goes;
* ``gzip-bomb``: a 200 of a few dozen KiB, ``Content-Encoding: gzip, gzip``, that
  decodes to 4 GiB of zeros (:func:`gzip_bomb`), whatever the request accepts;
* ``status500``: a 500 (a bundle store that is down, or says it is);
* ``redirect-file``: a 302 to ``file:///etc/passwd``;
* ``redirect-host``: a 302 to the same path on another loopback port (a second
  server of the same directory, honest: what a follower of redirects would trust).

Every other path is served from ``LOG_DIR`` as it is.  Stops on SIGTERM.
:func:`hostile_server` runs it for a test.
"""

from __future__ import annotations

import gzip
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _fixed_huffman(out: bytearray, state: list[int], code: int, bits: int) -> None:
    """Append a Huffman code (most significant bit first) to a deflate bit stream."""
    for shift in range(bits - 1, -1, -1):
        state[0] |= ((code >> shift) & 1) << state[1]
        state[1] += 1
        if state[1] == 8:
            out.append(state[0])
            state[0] = state[1] = 0


def gzip_bomb(unpacked: int = 4 << 30) -> bytes:
    """Twice-gzipped zeros, about ``unpacked`` bytes once decoded: built by hand (one
    fixed-Huffman deflate block: a zero, then matches of 258 at distance 1), so that
    no test spends seconds compressing gigabytes.  The inner stream has no trailer:
    a decoder runs out of memory long before it would look for one."""
    head, unit, state = bytearray(), bytearray(), [0, 0]
    # header bits are values, least significant first: BFINAL 1, BTYPE 01 -> 1, 1, 0
    for bit in (1, 1, 0):
        state[0] |= bit << state[1]
        state[1] += 1
    _fixed_huffman(head, state, 0x30, 8)         # literal 0
    _fixed_huffman(head, state, 0b11000101, 8)   # length 258 (code 285)
    _fixed_huffman(head, state, 0, 5)            # distance 1
    assert state == [0, 0] and len(head) == 3
    for _ in range(8):                           # 8 matches: 104 bits, 13 bytes
        _fixed_huffman(unit, state, 0b11000101, 8)
        _fixed_huffman(unit, state, 0, 5)
    assert state == [0, 0] and len(unit) == 13
    repeats = max(1, (unpacked // 258 - 1) // 8)
    inner = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + bytes(head) + bytes(unit) * repeats
    return gzip.compress(inner, 9)


def _handler(log_dir: Path, mode: str, hostile: str, other_port: list[int]
             ) -> type[BaseHTTPRequestHandler]:
    bomb = gzip_bomb() if mode == "gzip-bomb" else b""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _honest(self, path: str) -> None:
            target = (log_dir / path).resolve()
            if not (target.is_relative_to(log_dir.resolve()) and target.is_file()):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = target.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.lstrip("/")
            if mode == "honest" or (hostile != "*" and path != hostile):
                self._honest(path)
                return
            try:
                if mode == "drip":
                    self.send_response(200)
                    self.send_header("Content-Length", str(1 << 30))
                    self.end_headers()
                    while True:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.2)
                elif mode == "drip-headers":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    while True:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.2)
                elif mode == "status500":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif mode == "gzip-bomb":
                    self.send_response(200)
                    self.send_header("Content-Encoding", "gzip, gzip")
                    self.send_header("Content-Length", str(len(bomb)))
                    self.end_headers()
                    self.wfile.write(bomb)
                elif mode == "endless":
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    block = b"\0" * 65536
                    while True:
                        self.wfile.write(block)
                elif mode.startswith("redirect"):
                    where = "file:///etc/passwd" if mode == "redirect-file" else \
                        f"http://127.0.0.1:{other_port[0]}/{path}"
                    self.send_response(302)
                    self.send_header("Location", where)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


def main(log_dir: Path, mode: str, hostile: str) -> None:
    other_port = [0]
    servers = []
    if mode == "redirect-host":
        honest = ThreadingHTTPServer(("127.0.0.1", 0), _handler(log_dir, "honest", "", [0]))
        honest.daemon_threads = True
        other_port[0] = honest.server_address[1]
        threading.Thread(target=honest.serve_forever, daemon=True).start()
        servers.append(honest)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(log_dir, mode, hostile, other_port))
    server.daemon_threads = True
    servers.append(server)

    def stop(*_: object) -> None:
        for s in servers:
            threading.Thread(target=s.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@contextmanager
def hostile_server(log_dir: Path, mode: str, path: str) -> Iterator[str]:
    """This server of ``log_dir``, hostile for ``path`` the way ``mode`` names, in its
    own process: its base URL while the block runs."""
    with subprocess.Popen([sys.executable, "-m", "tests.audit.audit_inputs_review_server",
                           str(log_dir), mode, path], stdout=subprocess.PIPE,
                          cwd=Path(__file__).parents[2]) as server:
        try:
            assert server.stdout is not None
            yield f"http://127.0.0.1:{int(server.stdout.readline())}"
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
