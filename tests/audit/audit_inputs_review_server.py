"""A hostile log server for the audit-input review tests (test-only, its own process).

``python -m tests.audit.audit_inputs_review_server LOG_DIR MODE PATH`` serves
``LOG_DIR`` over HTTP on a free loopback port, prints the port on one line, and
answers requests for ``PATH`` (``*``: every path) the hostile way ``MODE`` names:

* ``drip``: a 200 whose body comes one byte every 0.2 s, for ever (slowloris);
* ``drip-headers``: a status line, then header bytes one every 0.2 s, for ever;
* ``endless``: a 200 without a length whose body never ends, as fast as it goes;
* ``redirect-file``: a 302 to ``file:///etc/passwd``;
* ``redirect-host``: a 302 to the same path on another loopback port (a second
  server of the same directory, honest: what a follower of redirects would trust).

Every other path is served from ``LOG_DIR`` as it is.  Stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _handler(log_dir: Path, mode: str, hostile: str, other_port: list[int]
             ) -> type[BaseHTTPRequestHandler]:
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


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
