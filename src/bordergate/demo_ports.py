"""The loopback ports one ``bordergate demo`` run listens on, and the check that
they are free before it starts anything (issue 16 item 2).

From one base port ``N`` (``--base-port``, or ``BORDERGATE_DEMO_BASE_PORT``):

    N, N+1, N+2            the us, eu and cn gateways
    N+1000 .. N+1002       their admin listeners (dashboard, /metrics)
    N+10 .. N+12           the log operators (sequencers)
    N+20, N+21             the two witnesses
    N+30 .. N+32           the key services

A port another program listens on would otherwise be found only after the
demo started half of its processes, or worse not at all: a stranger answering
``/healthz`` on a gateway's port would receive the demo's tokens.  So the demo
checks every port first (``check_free``) and, once its gateways answer, that
each one serves this run's log (``Demo._wait_healthy``: the checkpoint verifies
under the log key made by this run).  This module only binds and closes
sockets; it never connects to anything.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from bordergate.errors import Unavailable

__all__ = ["BASE_PORT_ENV", "DemoPorts", "PortTaken", "port_is_free"]

#: The environment variable that moves every port of the demo (``make demo`` honours it).
BASE_PORT_ENV = "BORDERGATE_DEMO_BASE_PORT"
CODES = ("us", "eu", "cn")
WITNESSES = ("auditor-witness", "monitor-witness")


class PortTaken(Unavailable):
    """A port the demo needs is taken by another program; nothing was started."""

    default_code = "port_in_use"

    def __init__(self, message: str, *, port: int, role: str) -> None:
        super().__init__(message)
        self.port = port
        self.role = role


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now.

    ``SO_REUSEADDR`` as the demo's servers set it: a port held only by
    connections in TIME_WAIT (a demo stopped a moment ago) counts as free, a
    port with a listener (or any bound socket) does not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class DemoPorts:
    """Every port of one demo run, derived from its base port (module docstring)."""

    base: int

    def __post_init__(self) -> None:
        if not 1024 <= self.base <= 65535 - 1002:
            raise PortTaken(f"base port {self.base} is out of range: the demo uses "
                            f"{self.base}..{self.base + 1002}; pick one in 1024..64533",
                            port=self.base, role="base port")

    @property
    def gateways(self) -> dict[str, int]:
        return {c: self.base + i for i, c in enumerate(CODES)}

    @property
    def admin(self) -> dict[str, int]:
        return {c: p + 1000 for c, p in self.gateways.items()}

    @property
    def sequencers(self) -> dict[str, int]:
        return {c: self.base + 10 + i for i, c in enumerate(CODES)}

    @property
    def witnesses(self) -> dict[str, int]:
        return {w: self.base + 20 + i for i, w in enumerate(WITNESSES)}

    @property
    def key_services(self) -> dict[str, int]:
        return {c: self.base + 30 + i for i, c in enumerate(CODES)}

    def roles(self) -> dict[int, str]:
        """Every port, with what listens on it (``8401: the us gateway``)."""
        out = {p: f"the {c} gateway" for c, p in self.gateways.items()}
        out |= {p: f"the {c} gateway's admin listener" for c, p in self.admin.items()}
        out |= {p: f"the {c} log sequencer" for c, p in self.sequencers.items()}
        out |= {p: f"the witness {w}" for w, p in self.witnesses.items()}
        out |= {p: f"the {c} key service" for c, p in self.key_services.items()}
        return dict(sorted(out.items()))

    def check_free(self) -> None:
        """Raise ``PortTaken`` (code ``port_in_use``) naming the first taken port.

        Raises:
            PortTaken: a port is taken; the message says by whom it was wanted and
                how to move every port of the demo.
        """
        for port, role in self.roles().items():
            if not port_is_free(port):
                raise PortTaken(
                    f"port {port} ({role}) is already in use by another program; the demo "
                    f"started nothing. Stop that program, or move every port of the demo "
                    f"with --base-port N (or {BASE_PORT_ENV}=N make demo); it uses "
                    f"{self.describe()}", port=port, role=role)

    def describe(self) -> str:
        """The port ranges, for messages: ``N..N+2, N+10..N+12, ...``."""
        b = self.base
        return (f"N..N+2, N+10..N+12, N+20..N+21, N+30..N+32 and N+1000..N+1002 "
                f"(now N={b}: {b}-{b + 2}, {b + 10}-{b + 12}, {b + 20}-{b + 21}, "
                f"{b + 30}-{b + 32}, {b + 1000}-{b + 1002})")
