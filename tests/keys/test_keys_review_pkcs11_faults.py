"""Keys review: a PKCS#11 fault while wrapping fails closed with a stable code.

The promise (docs/design.md: token or session failures surface as
``key_backend_unavailable``, 503; bordergate.keys.backends.hsm): ``wrap``
retried a stale key handle once, but a fault of that retry (the token removed
meanwhile, a session closed) escaped as a raw ``pkcs11`` exception: the key
service answered it with a traceback and a 500, the gateway's write path with
an unmapped error.  ``unwrap`` already mapped both attempts.

TEST-ONLY keys on a throw-away SoftHSM2 token (tests/keys/conftest.py).
"""

from __future__ import annotations

from typing import Any

import pkcs11
import pytest

from bordergate.errors import Unavailable
from bordergate.keys.backends.hsm import Pkcs11Backend
from tests.keys.conftest import SoftHsm


class _Failing:
    """A key handle whose every use fails as ``error`` does."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def encrypt(self, *args: Any, **kwargs: Any) -> bytes:
        raise self.error()


def test_a_fault_while_retrying_a_stale_handle_is_key_backend_unavailable(
        softhsm: SoftHsm, jurisdiction: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Token faults fail closed as ``key_backend_unavailable``: a wrap whose cached
    handle went stale and whose retry meets a removed token raises Unavailable,
    not the library's exception."""
    backend = softhsm.backend(jurisdiction)
    assert isinstance(backend, Pkcs11Backend)
    try:
        version = backend.create_version()
        backend._handles[version] = _Failing(pkcs11.ObjectHandleInvalid)
        monkeypatch.setattr(backend, "_scan",
                            lambda: {version: _Failing(pkcs11.DeviceRemoved)})
        with pytest.raises(Unavailable) as refused:
            backend.wrap(b"\x00" * 32, b"aad", version)
        assert refused.value.code == "key_backend_unavailable"
    finally:
        monkeypatch.undo()
        backend.close()
