"""TEST-ONLY lying witnesses, run as processes by tests/tlog/test_witness_review_*.py.

``python -m tests.tlog.witness_review_liars MODE PORT [ARGS]`` serves
``POST /add-checkpoint`` on 127.0.0.1:PORT as a witness that is not honest:

* ``endless``: answers 200 and streams ``A`` bytes, up to 64 MiB (it would go on
  forever if the cap were not there to spare the test machine);
* ``trickle``: answers 200 with ``Content-Length: 100000``, then one byte every
  0.2 s, forever;
* ``skewed OFFSET SEED ORIGIN=VKEY``: a real :class:`Witness` (in-memory state)
  whose cosignatures carry the time ``now + OFFSET`` seconds, with the TEST-ONLY
  witness key ``witness.test/skewed`` from the 32-byte hex ``SEED``.

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


def _serve_skewed(port: int, offset: int, seed: bytes, log: str) -> None:
    from bordergate.serving import run_server
    from bordergate.tlog.cosignature import CosignatureSigner
    from bordergate.tlog.witness import MemoryWitnessState, Witness
    from bordergate.tlog.witness_commands import parse_log_option
    from bordergate.tlog.witness_server import create_app

    signer = CosignatureSigner("witness.test/skewed", seed,
                               lambda: int(time.time()) + offset)
    origin, verifier = parse_log_option(log)
    witness = Witness(signer, {origin: [verifier]}, MemoryWitnessState())
    run_server(create_app(witness), host="127.0.0.1", port=port, access_log=False)


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "skewed":
        _serve_skewed(port, int(sys.argv[3]), bytes.fromhex(sys.argv[4]), sys.argv[5])
        return
    _Liar.mode = mode
    ThreadingHTTPServer(("127.0.0.1", port), _Liar).serve_forever()


if __name__ == "__main__":
    main()
