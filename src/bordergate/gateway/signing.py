"""A serving gateway's receipt signatures, made by a helper process, a batch per loop turn.

Every answer that releases data carries a receipt with one Ed25519 signature
(:mod:`bordergate.receipts`).  Made on the event loop, that signature is the
largest single cost of a read (about a tenth of the gateway's CPU per read,
docs/performance.md), and the loop is the gateway's bottleneck: one thread on
one core.  A thread cannot take it off the loop (the signing thread needs the
GIL back after every signature and waits for it behind the busy loop: measured,
the gateway's CPU per read went *up* by a fifth).  So a serving gateway hands
its signatures to a :class:`SigningHelper`: a child process holding the
receipt key, which signs, in order, the messages the loop collected during
one turn (the reads woken together by one log acknowledgement) and answers
with their signatures.  The loop pays one socket write and one read per batch
(a non-blocking socket watched by the loop: a stopped helper never blocks it).

Ed25519 signatures are deterministic: the helper's signature of a message is
the very signature the gateway would have made itself (tested).  The helper
signs whatever its gateway hands it, like the key in the gateway's own memory
would; it is the gateway's, not a separate party, and runs as the gateway's
user.

Failure closes: if the helper dies, answers garbage or leaves a batch
unanswered for :data:`ANSWER_TIMEOUT` seconds (hung), every read waiting on it
fails ``receipt_signer_unavailable`` (503; the reads were logged, nothing is
released without its receipt) and the next read starts a new helper.  A
helper process serves one event loop (one started under another, since closed,
loop is replaced).  This module must never send the key anywhere but the
helper's standard input (a pipe), never start the helper outside isolated mode
on the gateway's own module path (:func:`helper_command`), and never give a
caller a signature made for another caller's message.

Protocol on the socket (both ends in this module): a request is a 4-byte
big-endian count ``n`` then ``n`` times (4-byte length, message); the answer
is ``n`` signatures of 64 bytes, in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator

from bordergate.errors import Unavailable
from bordergate.tlog.note import Signer

__all__ = ["SIGNATURE_BYTES", "SigningHelper", "helper_command", "helper_main"]

SIGNATURE_BYTES = 64
MAX_MESSAGE_BYTES = 1 << 20
_MAX_BATCH = 4096
_U32 = struct.Struct(">I")
_CODE = "receipt_signer_unavailable"
#: Seconds a batch may wait for its signatures before the helper is taken for hung.
ANSWER_TIMEOUT = 5.0


class SigningHelper:
    """Signs with one Ed25519 key in a child process, batching a loop turn's messages."""

    def __init__(self, signer: Signer) -> None:
        """Bind the receipt key (the helper starts on first use)."""
        self._key = signer.key_string.encode("ascii")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._unsent = bytearray()  # what the socket did not take yet
        self._waiting_to_write = False
        self._received = bytearray()
        self._turn: list[tuple[bytes, asyncio.Future[bytes]]] = []
        # per batch sent and not answered yet: its readers' futures and when it was sent
        self._in_flight: collections.deque[tuple[list[asyncio.Future[bytes]], float]] = \
            collections.deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The running helper's process id (None before the first signature)."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the helper now, for the running event loop (else the first
        signature starts it, and waits for its interpreter to come up).

        Raises:
            Unavailable: ``receipt_signer_unavailable`` (it could not start).
            RuntimeError: no running event loop.
        """
        self._start(asyncio.get_running_loop())

    async def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``.

        Raises:
            Unavailable: ``receipt_signer_unavailable`` (the helper could not
                start, died or answered garbage; the helper was closed).
        """
        if self._closed:
            raise Unavailable("the receipt signer is closed", code=_CODE)
        if len(message) > MAX_MESSAGE_BYTES:
            raise ValueError("message too large for the signing helper")
        loop = asyncio.get_running_loop()
        if self._sock is None or self._loop is not loop:
            self._start(loop)
        future: asyncio.Future[bytes] = loop.create_future()
        if not self._turn:
            loop.call_soon(self._flush)
        self._turn.append((message, future))
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:  # a closed loop's turn never flushes: nobody awaits it
            _fail([f for _, f in self._turn], Unavailable("loop replaced", code=_CODE))
            self._turn = []
        self._stop_helper(Unavailable("the receipt signer was replaced", code=_CODE))
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                helper_command(theirs.fileno()), stdin=subprocess.PIPE,
                pass_fds=(theirs.fileno(),), close_fds=True)
            assert process.stdin is not None
            process.stdin.write(json.dumps(sys.path).encode("utf-8") + b"\n" + self._key)
            process.stdin.close()
        except OSError as exc:
            ours.close()
            raise Unavailable(f"the receipt signer could not start: {exc}", code=_CODE) from None
        finally:
            theirs.close()
        ours.setblocking(False)
        loop.add_reader(ours.fileno(), self._readable)
        self._loop, self._process, self._sock = loop, process, ours

    def _flush(self) -> None:
        """Send this loop turn's messages to the helper as one request (on the loop)."""
        turn, self._turn = self._turn, []
        if self._sock is None or self._loop is None:
            _fail([f for _, f in turn], Unavailable("the receipt signer is gone", code=_CODE))
            return
        loop_time = self._loop.time()
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(ANSWER_TIMEOUT, self._check_answered)
        for start in range(0, len(turn), _MAX_BATCH):
            part = turn[start:start + _MAX_BATCH]
            frame = [_U32.pack(len(part))]
            for message, _ in part:
                frame += (_U32.pack(len(message)), message)
            self._in_flight.append(([f for _, f in part], loop_time))
            self._unsent += b"".join(frame)
        self._writable()

    def _writable(self) -> None:
        """Send what the socket takes; wait for it to take the rest (never block)."""
        sock, loop = self._sock, self._loop
        if sock is None or loop is None:
            return
        try:
            sent = sock.send(self._unsent)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._stop_helper(Unavailable("the receipt signer is gone", code=_CODE))
            return
        del self._unsent[:sent]
        if bool(self._unsent) != self._waiting_to_write:
            self._waiting_to_write = bool(self._unsent)
            if self._unsent:
                loop.add_writer(sock.fileno(), self._writable)
            else:
                loop.remove_writer(sock.fileno())

    def _readable(self) -> None:
        if self._sock is None:
            return
        try:
            data = self._sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._stop_helper(Unavailable("the receipt signer died", code=_CODE))
            return
        buffer = self._received
        buffer += data
        while self._in_flight:
            futures = self._in_flight[0][0]
            size = SIGNATURE_BYTES * len(futures)
            if len(buffer) < size:
                return
            self._in_flight.popleft()
            for i, future in enumerate(futures):
                if not future.done():  # else: the reader went away meanwhile
                    future.set_result(bytes(buffer[i * SIGNATURE_BYTES:
                                                   (i + 1) * SIGNATURE_BYTES]))
            del buffer[:size]
        if buffer:  # bytes nobody asked for: the helper is not to be trusted further
            self._stop_helper(Unavailable("the receipt signer answered garbage", code=_CODE))

    def _check_answered(self) -> None:
        """Take the helper for hung if its oldest batch waited :data:`ANSWER_TIMEOUT`
        seconds (its readers fail closed; the next read starts a new helper)."""
        self._watchdog = None
        if not self._in_flight or self._loop is None:
            return
        waited = self._loop.time() - self._in_flight[0][1]
        if waited >= ANSWER_TIMEOUT:
            self._stop_helper(Unavailable(f"the receipt signer did not answer in "
                                          f"{ANSWER_TIMEOUT:g} s", code=_CODE))
        else:
            self._watchdog = self._loop.call_later(ANSWER_TIMEOUT - waited,
                                                   self._check_answered)

    def _stop_helper(self, reason: Unavailable) -> None:
        """Fail what waits on the current helper and stop it (the next read starts one)."""
        waiting = [f for futures, _ in self._in_flight for f in futures]
        self._in_flight.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._unsent.clear()
        self._received.clear()
        self._waiting_to_write = False
        _fail(waiting, reason)
        sock, process, loop = self._sock, self._process, self._loop
        self._sock = self._process = None
        if sock is not None:
            if loop is not None and not loop.is_closed():
                loop.remove_reader(sock.fileno())
                loop.remove_writer(sock.fileno())
            sock.close()
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()

    def close(self) -> None:
        """Stop the helper; what still waits fails ``receipt_signer_unavailable``."""
        self._closed = True
        _fail([f for _, f in self._turn], Unavailable("the receipt signer closed", code=_CODE))
        self._turn = []
        self._stop_helper(Unavailable("the receipt signer closed", code=_CODE))


def _fail(futures: list[asyncio.Future[bytes]], reason: Unavailable) -> None:
    for future in futures:
        if not future.done():
            with contextlib.suppress(RuntimeError):  # its loop closed already
                future.set_exception(reason)


def _frames(sock: socket.socket) -> Iterator[list[bytes]]:
    """The messages of each request on ``sock``, read in as few ``recv`` calls as
    the gateway's writes allow (a loop turn's request usually arrives in one);
    ends at EOF.  A request that breaks the protocol ends the process."""
    buffer = bytearray()
    while True:
        at = 0
        while (frame := _frame_at(buffer, at)) is not None:  # every complete request
            messages, at = frame
            yield messages
        del buffer[:at]
        data = sock.recv(1 << 16)
        if not data:
            return
        buffer += data


def _frame_at(buffer: bytearray, at: int) -> tuple[list[bytes], int] | None:
    """The messages of the request starting at ``at`` and where it ends; None while
    it is incomplete.  A request that breaks the protocol ends the process."""
    end = at + _U32.size
    if len(buffer) < end:
        return None
    count = _U32.unpack_from(buffer, at)[0]
    if not 0 < count <= _MAX_BATCH:
        os._exit(3)
    messages = []
    for _ in range(count):
        if len(buffer) < end + _U32.size:
            return None
        size = _U32.unpack_from(buffer, end)[0]
        if size > MAX_MESSAGE_BYTES:
            os._exit(3)
        end += _U32.size
        if len(buffer) < end + size:
            return None
        messages.append(bytes(buffer[end:end + size]))
        end += size
    return messages, end


#: The helper's first code: the gateway's module path (the first line of its
#: standard input), then this module; nothing else is imported before.
_BOOT = ("import json, sys; sys.path[:] = json.loads(sys.stdin.buffer.readline()); "
         "from bordergate.gateway.signing import helper_main; helper_main()")


def helper_command(fd: int) -> list[str]:
    """The helper's command line: the gateway's interpreter in isolated mode (``-I``:
    no working directory, user site or ``PYTHON*`` variables on the path; ``-S``: no
    ``site``, so no ``.pth`` runs), with the gateway's ``-B`` and ``pycache_prefix``,
    and the gateway's own ``sys.path`` (sent on its standard input).  A gateway
    started through ``runtime_boot`` thus runs its helper from exactly the verified
    directories (promise 6), and a module planted in the working directory or on
    ``PYTHONPATH`` is never imported by the process holding the receipt key."""
    flags = ["-I", "-S"]
    if sys.flags.dont_write_bytecode:
        flags.append("-B")
    if sys.pycache_prefix is not None:
        flags += ["-X", f"pycache_prefix={sys.pycache_prefix}"]
    return [sys.executable, *flags, "-c", _BOOT, str(fd)]


def helper_main() -> None:
    """The helper process (:func:`helper_command`): the key on standard input (after
    the module path line), then requests on the socket whose descriptor is the
    first argument, until the gateway closes it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is for the gateway;
    # the helper ends when the gateway closes the socket (or dies: the same EOF)
    key = Signer.from_key_string(sys.stdin.buffer.read(4096).decode("ascii"))
    sock = socket.socket(fileno=int(sys.argv[1]))
    for messages in _frames(sock):
        sock.sendall(b"".join(key.sign(message) for message in messages))
