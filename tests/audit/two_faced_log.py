"""A log server that answers a second request for one file with other bytes
(test-only, run as its own process by the audit's regression tests).

``python -m tests.audit.two_faced_log LOG_DIR PATH REPLACEMENT_FILE`` serves
``LOG_DIR`` over HTTP on a free loopback port, prints the port on one line, and
from the second request of ``PATH`` on answers the bytes of ``REPLACEMENT_FILE``:
what a log operator does to an auditor that reads the log's files twice, honest
while the log is checked and doctored afterwards.  Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main(log_dir: Path, doctored: str, replacement: bytes) -> None:
    served: dict[str, int] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            path = self.path.lstrip("/")
            with lock:
                served[path] = times = served.get(path, 0) + 1
            target = (log_dir / path).resolve()
            if path == doctored and times >= 2:
                data: bytes | None = replacement
            elif target.is_relative_to(log_dir.resolve()) and target.is_file():
                data = target.read_bytes()
            else:
                data = None
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]).read_bytes())
