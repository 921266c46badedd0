"""TEST-ONLY lying witnesses, run as processes by tests/tlog/test_witness_review_*.py.

``python -m tests.tlog.witness_review_liars MODE PORT [ARGS]`` serves
``POST /add-checkpoint`` on 127.0.0.1:PORT as a witness that is not honest:

* ``endless``: answers 200 and streams ``A`` bytes, up to 64 MiB (it would go on
  forever if the cap were not there to spare the test machine);
* ``trickle``: answers 200 with ``Content-Length: 100000``, then one byte every
  0.2 s, forever;
* ``witness NAME OFFSET DELAY SEED ORIGIN=VKEY``: a real :class:`Witness`
  (in-memory state) with the TEST-ONLY key ``NAME`` from the 32-byte hex
  ``SEED``, whose cosignatures carry the time ``now + OFFSET`` seconds and whose
  every answer waits ``DELAY`` seconds first.

Never use these outside tests.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENDLESS_CAP = 64 << 20


class _Liar(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = "endless"

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        if self.mode == "trickle":
            self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            if self.mode == "trickle":
                while True:
                    self.wfile.write(b"A")
                    self.wfile.flush()
                    time.sleep(0.2)
            sent, chunk = 0, b"A" * 65536
            while sent < ENDLESS_CAP:
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the log hung up: what it should do
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve_witness(port: int, name: str, offset: int, delay: float, seed: bytes,
                   log: str) -> None:
    import asyncio

    from starlette.types import Receive, Scope, Send

    from bordergate.serving import run_server
    from bordergate.tlog.cosignature import CosignatureSigner
    from bordergate.tlog.witness import MemoryWitnessState, Witness
    from bordergate.tlog.witness_commands import parse_log_option
    from bordergate.tlog.witness_server import create_app

    signer = CosignatureSigner(name, seed, lambda: int(time.time()) + offset)
    origin, verifier = parse_log_option(log)
    inner = create_app(Witness(signer, {origin: [verifier]}, MemoryWitnessState()))

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(delay)
        await inner(scope, receive, send)

    run_server(slow, host="127.0.0.1", port=port, access_log=False)


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "witness":
        name, offset, delay, seed, log = sys.argv[3:8]
        _serve_witness(port, name, int(offset), float(delay), bytes.fromhex(seed), log)
        return
    _Liar.mode = mode
    ThreadingHTTPServer(("127.0.0.1", port), _Liar).serve_forever()


if __name__ == "__main__":
    main()
