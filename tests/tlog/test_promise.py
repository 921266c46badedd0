"""The sequencer's signed promise of inclusion (issue 12 item 2, point 4): it binds
origin, index, leaf hash and time under the log key, in its own signing domain."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordergate.errors import VerificationError
from bordergate.tlog.checkpoint import Checkpoint, sign_checkpoint
from bordergate.tlog.note import Signer
from bordergate.tlog.promise import open_promise, promise_for
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage.memory import MemoryStorage
from tests.base64_spelling import respelled
from tests.tlog.logkeys import log_signer

SIGNER = log_signer()


@given(st.integers(0, 2**62), st.binary(max_size=300), st.integers(0, 2**50))
def test_promise_round_trips(index: int, entry: bytes, time_ms: int) -> None:
    """A promise opens with the log's key and states exactly what was signed."""
    p = open_promise(promise_for(SIGNER, index, entry, time_ms), SIGNER.verifier())
    assert (p.origin, p.index, p.time_ms) == (SIGNER.name, index, time_ms)
    assert p.covers(entry)


@given(st.binary(min_size=1, max_size=200), st.data())
def test_altered_promise_is_refused(entry: bytes, data: st.DataObject) -> None:
    """Any changed byte makes the promise malformed or badly signed, never valid."""
    raw = bytearray(promise_for(SIGNER, 7, entry, 1000))
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(VerificationError) as e:
        open_promise(bytes(raw), SIGNER.verifier())
    assert e.value.code in ("malformed_promise", "promise_signature_invalid")


def test_another_spelling_of_the_signature_is_refused() -> None:
    """Bad input (found by the property above): the signature's last base64 character
    respelled with other unused low bits decodes to the same 64 bytes; a promise has
    one text, so it is ``malformed_promise``, not a second valid promise."""
    text = promise_for(SIGNER, 7, b"entry", 1000).decode()
    signature = text.rsplit(" ", 1)[1].strip()
    other = text.replace(signature, respelled(signature))
    with pytest.raises(VerificationError) as e:
        open_promise(other.encode(), SIGNER.verifier())
    assert e.value.code == "malformed_promise"


def test_another_key_and_a_checkpoint_are_not_promises() -> None:
    """Domain separation: another log's key does not verify it, and a checkpoint
    signed by the same key is not a promise."""
    other = Signer.generate(SIGNER.name)
    with pytest.raises(VerificationError) as e:
        open_promise(promise_for(other, 0, b"x", 0), SIGNER.verifier())
    assert e.value.code == "promise_signature_invalid"
    note = sign_checkpoint(Checkpoint(SIGNER.name, 0, b"\0" * 32), SIGNER)
    with pytest.raises(VerificationError):
        open_promise(note, SIGNER.verifier())


def test_in_process_sequencer_promises_what_it_sequenced() -> None:
    """The in-process Sequencer exposes the promise of each entry it acknowledged."""
    storage = MemoryStorage()
    create_log(storage, SIGNER)
    with Sequencer(storage, SIGNER) as seq:
        first = seq.append_many([b"a", b"b"])
        promises = [open_promise(p, SIGNER.verifier())
                    for p in seq.promises(first, [b"a", b"b"])]
    assert [p.index for p in promises] == [first, first + 1]
    assert promises[1].covers(b"b")
