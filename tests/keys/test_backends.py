"""One key-backend test suite, run against the memory twin, the key file and SoftHSM2.

Promise 1: a jurisdiction's data keys are wrapped under KEKs held only by its
key ring; the PKCS#11 backend passes exactly the same tests as the file backend.
"""

from __future__ import annotations

import pytest

from bordergate.errors import NotFound, VerificationError
from bordergate.keys.backend import KeyBackend
from bordergate.keys.envelope import data_key_aad
from tests.keys.conftest import BackendFactory

DATA_KEY = bytes(range(32))  # test-only data key


def test_conforms_to_the_interface(backend_factory: BackendFactory, jurisdiction: str) -> None:
    """Promise 1: every backend is a KeyBackend bound to one jurisdiction."""
    backend = backend_factory(jurisdiction)
    assert isinstance(backend, KeyBackend)
    assert backend.jurisdiction == jurisdiction
    assert backend.kind in {"memory", "file", "pkcs11"}


def test_versions_start_empty_and_grow(backend_factory: BackendFactory,
                                       jurisdiction: str) -> None:
    """Promise 1: KEK versions are created in order, the newest being current."""
    backend = backend_factory(jurisdiction)
    assert backend.versions() == ()
    assert backend.create_version() == 1
    assert backend.create_version() == 2
    assert backend.versions() == (1, 2)


def test_wrap_unwrap_round_trip(backend_factory: BackendFactory, jurisdiction: str) -> None:
    """Promise 1: a data key wrapped under a version unwraps under it, with the same AAD."""
    backend = backend_factory(jurisdiction)
    version = backend.create_version()
    aad = data_key_aad(jurisdiction, "s", version)
    wrapped = backend.wrap(DATA_KEY, aad, version)
    assert DATA_KEY not in wrapped
    assert wrapped[0] == 0x01 and len(wrapped) == 1 + 12 + 32 + 16
    assert backend.unwrap(wrapped, aad, version) == DATA_KEY
    assert backend.wrap(DATA_KEY, aad, version) != wrapped  # fresh nonce each time


def test_wrong_context_or_version_does_not_unwrap(backend_factory: BackendFactory,
                                                  jurisdiction: str) -> None:
    """Promise 1: a wrapped key opens only for its subject and KEK version."""
    backend = backend_factory(jurisdiction)
    v1, v2 = backend.create_version(), backend.create_version()
    wrapped = backend.wrap(DATA_KEY, data_key_aad(jurisdiction, "alice", v1), v1)
    with pytest.raises(VerificationError) as info:
        backend.unwrap(wrapped, data_key_aad(jurisdiction, "bob", v1), v1)
    assert info.value.code == "decryption_failed"
    with pytest.raises(VerificationError):
        backend.unwrap(wrapped, data_key_aad(jurisdiction, "alice", v2), v2)
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(VerificationError):
        backend.unwrap(tampered, data_key_aad(jurisdiction, "alice", v1), v1)


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x02" + bytes(60), bytes(61)],
                         ids=["empty", "header-only", "unknown-format", "zero-format"])
def test_malformed_wrapped_keys(backend_factory: BackendFactory, jurisdiction: str,
                                blob: bytes) -> None:
    """Behaviour: malformed wrapped keys are VerificationErrors, never crashes."""
    backend = backend_factory(jurisdiction)
    version = backend.create_version()
    with pytest.raises(VerificationError):
        backend.unwrap(blob, b"aad", version)


def test_destroyed_version_cannot_unwrap(backend_factory: BackendFactory,
                                         jurisdiction: str) -> None:
    """Promise 8: once a KEK version is destroyed, nothing it wrapped can be unwrapped."""
    backend = backend_factory(jurisdiction)
    v1 = backend.create_version()
    backend.create_version()
    aad = data_key_aad(jurisdiction, "alice", v1)
    wrapped = backend.wrap(DATA_KEY, aad, v1)
    backend.destroy_version(v1)
    assert backend.versions() == (2,)
    with pytest.raises(NotFound) as info:
        backend.unwrap(wrapped, aad, v1)
    assert info.value.code == "kek_version_not_found"
    with pytest.raises(NotFound):
        backend.wrap(DATA_KEY, aad, v1)
    with pytest.raises(NotFound):
        backend.destroy_version(v1)


def test_second_handle_sees_the_same_keys(backend_factory: BackendFactory,
                                          jurisdiction: str) -> None:
    """Promise 1: another process's handle on the same key store unwraps what one wrapped."""
    first = backend_factory(jurisdiction)
    version = first.create_version()
    aad = data_key_aad(jurisdiction, "alice", version)
    wrapped = first.wrap(DATA_KEY, aad, version)
    second = backend_factory(jurisdiction)
    assert second.unwrap(wrapped, aad, version) == DATA_KEY
    newer = second.create_version()
    assert first.unwrap(second.wrap(DATA_KEY, aad, newer), aad, newer) == DATA_KEY


def test_jurisdictions_do_not_share_keys(backend_factory: BackendFactory,
                                         jurisdiction: str) -> None:
    """Promise 1: another jurisdiction's key ring cannot unwrap this one's data keys."""
    ours = backend_factory(jurisdiction)
    theirs = backend_factory(jurisdiction[::-1] + "x" if len(jurisdiction) < 8
                             else jurisdiction[::-1])
    version = ours.create_version()
    theirs.create_version()
    aad = data_key_aad(jurisdiction, "alice", version)
    wrapped = ours.wrap(DATA_KEY, aad, version)
    with pytest.raises(VerificationError):
        theirs.unwrap(wrapped, aad, version)


def test_repr_holds_no_key_material(backend_factory: BackendFactory,
                                    jurisdiction: str) -> None:
    """Behaviour: a backend's repr names its jurisdiction and nothing else of substance."""
    backend = backend_factory(jurisdiction)
    backend.create_version()
    text = repr(backend)
    assert jurisdiction in text
    assert len(text) < 160


def test_destroy_through_one_handle_is_seen_by_another(backend_factory: BackendFactory,
                                                       jurisdiction: str) -> None:
    """Promise 8: a KEK version destroyed by the custodian's CLI stops working in every
    process that still had it open (another handle on the same key store)."""
    worker = backend_factory(jurisdiction)
    v1 = worker.create_version()
    worker.create_version()
    aad = data_key_aad(jurisdiction, "alice", v1)
    wrapped = worker.wrap(DATA_KEY, aad, v1)
    assert worker.unwrap(wrapped, aad, v1) == DATA_KEY  # v1 now held/cached by the worker
    custodian = backend_factory(jurisdiction)
    custodian.destroy_version(v1)
    with pytest.raises(NotFound):
        worker.unwrap(wrapped, aad, v1)
    assert worker.versions() == (2,)
