"""A serving gateway's read receipts, made by a helper process, a batch per loop turn.

Every answer that releases data carries a receipt with one Ed25519 signature
(:mod:`bordergate.receipts`).  Made on the event loop, a read's receipt was the
largest single cost of a read: the signature (about a tenth of the gateway's
CPU per read, docs/performance.md), then the statement (the salted digest of
the values, the leaf hash, the canonical encoding: about 35 µs more); and the
loop is the gateway's bottleneck: one thread on one core.  A thread cannot
take it off the loop (the signing thread needs the GIL back after every
signature and waits for it behind the busy loop: measured, the gateway's CPU
per read went *up* by a fifth).  So a serving gateway hands its reads'
receipts to a :class:`SigningHelper`: a child process holding the receipt key,
which makes, in order, the receipts of the answers the loop collected during
one turn (the reads woken together by one log acknowledgement).  The loop
encodes the answer (which it must do to send it anyway), hands the helper that
encoding with the entry's index and bytes, and splices the helper's receipt
members into the encoding it sent (:meth:`SigningHelper.read_receipt`).  It
pays one socket write and one read per batch (a non-blocking socket watched
by the loop: a stopped helper never blocks it).

The helper computes the receipt from the very bytes the gateway sends: the
digest covers exactly the values the requester receives, as the requester's
own :func:`bordergate.receipts.check_answer` recomputes it (tested against the
receipt the gateway itself would make of the same answer, same salt; Ed25519
is deterministic).  The helper makes whatever its gateway hands it, like the
key in the gateway's own memory would; it is the gateway's, not a separate
party, and runs as the gateway's user.

Failure closes: if the helper dies, answers garbage or leaves a request
unanswered for :data:`ANSWER_TIMEOUT` seconds (hung), every read waiting on it
fails ``receipt_signer_unavailable`` (503; the reads were logged, nothing is
released without its receipt) and the next read starts a new helper.  An
answer whose values the helper cannot canonicalize fails that read alone,
``receipt_values_not_json``.  A helper process serves one event loop (one
started under another, since closed, loop is replaced).  This module must
never send the key anywhere but the helper's standard input (a pipe), never
start the helper outside isolated mode on the gateway's own module path
(:func:`helper_command`), and never give a caller a receipt or signature made
for another caller's answer or message.

Protocol on the socket (both ends in this module): the gateway writes each
loop turn's requests in one write, each a 1-byte kind and a 4-byte big-endian
length then that many bytes: kind ``S`` a message to sign; kind ``R`` a read's
receipt: the entry's index (8 bytes) and length (4 bytes), the entry's bytes
(as the log sequences them), then the answer's JSON.  The helper answers
each request, in order, as soon as it is made (the first reads of a batch need
not wait for the last: measured, a batch's receipts took about 5 ms in the
bench): a 1-byte status (``0`` done, ``1`` refused) and a 4-byte length then
that many bytes: the 64-byte signature, the receipt members
(``"receipt":{...},"receipt_salt":"..."``), or the reason for a refusal.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator

from bordergate.errors import Unavailable, VerificationError
from bordergate.receipts import ReceiptSigner, released_values
from bordergate.tlog.note import Signer

__all__ = ["SIGNATURE_BYTES", "SigningHelper", "encode_answer", "helper_command", "helper_main"]

SIGNATURE_BYTES = 64
MAX_MESSAGE_BYTES = 1 << 20
_ITEM = struct.Struct(">BI")  # kind or status, length
_READ = struct.Struct(">QI")  # a read receipt's entry index and entry length
_SIGN, _READ_RECEIPT = b"S"[0], b"R"[0]
_DONE, _REFUSED = 0, 1
_RECEIPT_MEMBERS = b'"receipt":'
_CODE = "receipt_signer_unavailable"
#: Seconds a batch may wait for its answers before the helper is taken for hung.
ANSWER_TIMEOUT = 5.0
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def encode_answer(body: object) -> bytes:
    """An answer's JSON as the gateway sends it (``JSONResponse``'s encoding): what
    :meth:`SigningHelper.read_receipt` takes and its members are spliced into.

    Raises:
        ValueError, TypeError: ``body`` is not JSON (NaN, a lone surrogate, other types).
    """
    return _JSON(body).encode("utf-8")


class SigningHelper:
    """Makes one gateway's read receipts (and signatures) in a child process,
    batching a loop turn's requests."""

    def __init__(self, receipts: ReceiptSigner, origin: str) -> None:
        """Bind the receipt key, the gateway and its log's ``origin`` (the helper
        starts on first use)."""
        self._key = receipts.signer.key_string.encode("ascii")
        self._context = json.dumps({"gateway": receipts.gateway,
                                    "origin": origin}).encode("utf-8")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._unsent = bytearray()  # what the socket did not take yet
        self._waiting_to_write = False
        self._received = bytearray()
        self._turn: list[tuple[int, bytes, asyncio.Future[bytes]]] = []
        # per request sent and not answered yet, in order: its caller's future and
        # when it was sent
        self._in_flight: collections.deque[tuple[asyncio.Future[bytes], float]] = \
            collections.deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The running helper's process id (None before the first request)."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the helper now, for the running event loop (else the first
        request starts it, and waits for its interpreter to come up).

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
        if len(message) > MAX_MESSAGE_BYTES:
            raise ValueError("message too large for the signing helper")
        signature = await self._ask(_SIGN, message)
        if len(signature) != SIGNATURE_BYTES:
            raise Unavailable("the receipt signer answered garbage", code=_CODE)
        return signature

    def takes(self, entry: bytes, answer: bytes) -> bool:
        """Whether a read's receipt for this entry and encoded answer fits one request."""
        return _READ.size + len(entry) + len(answer) <= MAX_MESSAGE_BYTES

    async def read_receipt(self, index: int, entry: bytes, answer: bytes) -> bytes:
        """The receipt members of a read's ``answer`` (its JSON as sent: an
        object), ``"receipt":{...},"receipt_salt":"..."``, for the entry at
        ``index`` whose bytes, as the log sequences them, are ``entry``.  Splice
        them in as the answer's last members.

        Raises:
            ValueError: a request :meth:`takes` refuses (programmer misuse).
            VerificationError: ``receipt_values_not_json`` (as
                :func:`bordergate.receipts.canonical_released`).
            Unavailable: as :meth:`sign`.
        """
        if not self.takes(entry, answer):
            raise ValueError("answer too large for the signing helper")
        members = await self._ask(_READ_RECEIPT, b"".join(
            (_READ.pack(index, len(entry)), entry, answer)))
        if not members.startswith(_RECEIPT_MEMBERS):
            raise Unavailable("the receipt signer answered garbage", code=_CODE)
        return members

    async def _ask(self, kind: int, payload: bytes) -> bytes:
        if self._closed:
            raise Unavailable("the receipt signer is closed", code=_CODE)
        loop = asyncio.get_running_loop()
        if self._sock is None or self._loop is not loop:
            self._start(loop)
        future: asyncio.Future[bytes] = loop.create_future()
        if not self._turn:
            loop.call_soon(self._flush)
        self._turn.append((kind, payload, future))
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:  # a closed loop's turn never flushes: nobody awaits it
            _fail([f for _, _, f in self._turn], Unavailable("loop replaced", code=_CODE))
            self._turn = []
        self._stop_helper(Unavailable("the receipt signer was replaced", code=_CODE))
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                helper_command(theirs.fileno()), stdin=subprocess.PIPE,
                pass_fds=(theirs.fileno(),), close_fds=True)
            assert process.stdin is not None
            process.stdin.write(b"\n".join((json.dumps(sys.path).encode("utf-8"),
                                            self._context, self._key)))
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
        """Send this loop turn's requests to the helper as one frame (on the loop)."""
        turn, self._turn = self._turn, []
        if self._sock is None or self._loop is None:
            _fail([f for _, _, f in turn], Unavailable("the receipt signer is gone", code=_CODE))
            return
        loop_time = self._loop.time()
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(ANSWER_TIMEOUT, self._check_answered)
        frame: list[bytes] = []
        for kind, payload, _ in turn:
            frame += (_ITEM.pack(kind, len(payload)), payload)
        self._in_flight.extend((f, loop_time) for _, _, f in turn)
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
        waiting, at = self._in_flight, 0
        while waiting:  # the answers come one by one, in order, as the helper makes them
            if len(buffer) < at + _ITEM.size:
                break
            status, size = _ITEM.unpack_from(buffer, at)
            if status not in (_DONE, _REFUSED) or size > MAX_MESSAGE_BYTES:
                self._stop_helper(Unavailable("the receipt signer answered garbage",
                                              code=_CODE))
                return
            if len(buffer) < at + _ITEM.size + size:
                break
            value = bytes(buffer[at + _ITEM.size:at + _ITEM.size + size])
            at += _ITEM.size + size
            future = waiting.popleft()[0]
            if future.done():  # the caller went away meanwhile
                continue
            if status == _DONE:
                future.set_result(value)
            else:
                future.set_exception(VerificationError(
                    value.decode("utf-8", "replace"), code="receipt_values_not_json"))
        del buffer[:at]
        if buffer and not waiting:  # bytes nobody asked for: trust the helper no further
            self._stop_helper(Unavailable("the receipt signer answered garbage", code=_CODE))

    def _check_answered(self) -> None:
        """Take the helper for hung if its oldest request waited :data:`ANSWER_TIMEOUT`
        seconds (its callers fail closed; the next request starts a new helper)."""
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
        """Fail what waits on the current helper and stop it (the next request starts one)."""
        waiting = [f for f, _ in self._in_flight]
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
        _fail([f for _, _, f in self._turn],
              Unavailable("the receipt signer closed", code=_CODE))
        self._turn = []
        self._stop_helper(Unavailable("the receipt signer closed", code=_CODE))


def _fail(futures: list[asyncio.Future[bytes]], reason: Unavailable) -> None:
    for future in futures:
        if not future.done():
            with contextlib.suppress(RuntimeError):  # its loop closed already
                future.set_exception(reason)


def _requests(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    """The helper's requests as they arrive on ``sock`` (kind, payload), read in
    as few ``recv`` calls as the gateway's writes allow; ends at EOF.  A request
    longer than :data:`MAX_MESSAGE_BYTES` ends the process."""
    buffer = bytearray()
    while True:
        at = 0
        while len(buffer) - at >= _ITEM.size:
            kind, size = _ITEM.unpack_from(buffer, at)
            if size > MAX_MESSAGE_BYTES:
                os._exit(3)
            start = at + _ITEM.size
            if len(buffer) - start < size:
                break
            yield kind, bytes(buffer[start:start + size])
            at = start + size
        del buffer[:at]
        data = sock.recv(1 << 16)
        if not data:
            return
        buffer += data


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


def _read_receipt_members(receipts: ReceiptSigner, origin: str, payload: bytes) -> bytes:
    """The receipt members for a kind ``R`` request (see the module's protocol).

    Raises:
        VerificationError: values that are not canonical JSON.
        ValueError, KeyError, TypeError: a request that is not a read's answer.
    """
    index, size = _READ.unpack_from(payload)
    entry = payload[_READ.size:_READ.size + size]
    answer = json.loads(payload[_READ.size + size:])
    fields = answer["fields"]
    unsigned = receipts.prepare(
        origin=origin, index=index, entry=entry, action="read",
        collection=answer["collection"],
        fields=[name for name, value in fields.items() if value is not None],
        values=released_values("read", answer))
    members = _JSON({"receipt": unsigned.signed(receipts.signer.sign(unsigned.message)),
                            "receipt_salt": base64.b64encode(unsigned.salt).decode("ascii")})
    return members[1:-1].encode("utf-8")


def helper_main() -> None:
    """The helper process (:func:`helper_command`): after the module path line, its
    gateway and log origin (a JSON line) then the key on standard input; then
    requests on the socket whose descriptor is the first argument, until the
    gateway closes it.  A request it cannot serve ends it (the gateway fails
    that batch closed and starts another helper)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is for the gateway;
    # the helper ends when the gateway closes the socket (or dies: the same EOF)
    context = json.loads(sys.stdin.buffer.readline())
    key = Signer.from_key_string(sys.stdin.buffer.read(4096).decode("ascii"))
    receipts, origin = ReceiptSigner(key, str(context["gateway"])), str(context["origin"])
    sock = socket.socket(fileno=int(sys.argv[1]))
    for kind, payload in _requests(sock):
        status, value = _DONE, b""
        if kind == _SIGN:
            value = receipts.signer.sign(payload)
        elif kind == _READ_RECEIPT:
            try:
                value = _read_receipt_members(receipts, origin, payload)
            except VerificationError as exc:
                status, value = _REFUSED, str(exc).encode("utf-8")
        else:
            os._exit(3)
        # each answer as soon as it is made: a read need not wait for the whole batch
        sock.sendall(_ITEM.pack(status, len(value)) + value)
