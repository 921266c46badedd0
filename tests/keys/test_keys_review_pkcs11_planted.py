"""Keys review: a KEK object planted on the PKCS#11 token is never used.

The promise (docs/design.md, threat-model U1 and K7): KEKs stay in the key
backend, created non-extractable, so a copy of the store cannot be opened away
from the HSM.  The backend found its KEKs by label only, so whoever could open a
session on the token could put an AES key of a value they know (or a public one,
usable without the PIN) under the next version's label, and every new data key
was wrapped under it.  Each planting below is done by another process, as the
attacker would, on a real SoftHSM2 token; the victim is the key ring of the
jurisdiction (what the key service and ``gateway init`` use).

TEST-ONLY keys on a throw-away SoftHSM2 token (tests/keys/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bordergate.errors import Unavailable
from bordergate.keys.envelope import NONCE_BYTES, data_key_aad
from bordergate.keys.keyring import KeyRing
from bordergate.residency.stores.sqlite import SqliteRecordStore
from bordergate.subjects import SubjectId
from tests.keys.conftest import SOFTHSM_LIBRARY, TOKEN_LABEL, TOKEN_PIN, SoftHsm

KNOWN = bytes(range(32))  # the value the attacker gives its planted key

_PLANT = textwrap.dedent("""
    import json, sys
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass
    library, token, label, how, pin = json.loads(sys.argv[1])
    t = pkcs11.lib(library).get_token(token_label=token)
    session = t.open(rw=True, user_pin=pin) if pin else t.open(rw=True)
    base = {Attribute.LABEL: label, Attribute.TOKEN: True, Attribute.ENCRYPT: True,
            Attribute.DECRYPT: True}
    if how == "generated-public":   # unknown value, but usable by anyone without the PIN
        session.generate_key(KeyType.AES, 256, label=label, store=True, template={
            Attribute.PRIVATE: False, Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False})
    else:                           # a value the planter knows
        session.create_object({**base, Attribute.CLASS: ObjectClass.SECRET_KEY,
                               Attribute.KEY_TYPE: KeyType.AES,
                               Attribute.VALUE: bytes(range(32)),
                               Attribute.PRIVATE: how == "imported-private",
                               Attribute.SENSITIVE: how == "imported-private",
                               Attribute.EXTRACTABLE: how != "imported-private"})
    session.close()
""")


def _plant(label: str, how: str, *, pin: str | None) -> None:
    """Plant a key on the token from another process (no PIN unless ``pin``)."""
    args = json.dumps([SOFTHSM_LIBRARY, TOKEN_LABEL, label, how, pin])
    done = subprocess.run([sys.executable, "-c", _PLANT, args], check=False,
                          capture_output=True,
                          text=True, timeout=60, env=dict(os.environ))
    assert done.returncode == 0, done.stderr


def _public_unwrap(label: str, wrapped: bytes, aad: bytes) -> bytes | None:
    """What an attacker without the PIN gets from a public key under ``label``."""
    code = textwrap.dedent("""
        import base64, json, sys
        import pkcs11
        from pkcs11 import Attribute, Mechanism, ObjectClass
        library, token, label, wrapped, aad = json.loads(sys.argv[1])
        s = pkcs11.lib(library).get_token(token_label=token).open()
        key = s.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
        w = base64.b64decode(wrapped)
        print(base64.b64encode(bytes(key.decrypt(w[13:], mechanism=Mechanism.AES_GCM,
              mechanism_param=pkcs11.GCMParams(w[1:13], base64.b64decode(aad), 128))))
              .decode())
    """)
    import base64
    args = json.dumps([SOFTHSM_LIBRARY, TOKEN_LABEL, label,
                       base64.b64encode(wrapped).decode(), base64.b64encode(aad).decode()])
    done = subprocess.run([sys.executable, "-c", code, args], check=False,
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    return base64.b64decode(done.stdout) if done.returncode == 0 else None


@pytest.mark.parametrize(("how", "version", "with_pin"), [
    ("known-public", 2, False),       # no PIN: a public token object of known value
    ("generated-public", 2, False),   # no PIN: generated on the token, but public
    ("known-public", 1, False),       # no PIN: a second object for the current version
    ("imported-private", 2, True),    # the PIN holder imports a value they know
])
def test_a_planted_kek_object_is_never_used_to_wrap(softhsm: SoftHsm, jurisdiction: str,
                                                    tmp_path: Path, how: str, version: int,
                                                    with_pin: bool) -> None:
    """KEKs are generated on the token and never extractable (U1, K7): an object
    planted under a KEK label by another process (public, imported with a known
    value, or a second object for one version) is refused (``kek_object_invalid``,
    fail closed), never used to wrap a new subject's data key."""
    backend = softhsm.backend(jurisdiction)
    store = SqliteRecordStore(tmp_path / "records.db", jurisdiction=jurisdiction)
    ring = KeyRing(backend, store)
    try:
        ring.init()
        label = f"bordergate-kek/{jurisdiction}/{version}"
        _plant(label, how, pin=TOKEN_PIN if with_pin else None)
        subject = SubjectId.mint(jurisdiction)
        try:
            ring.cipher_for(subject, create=True)
        except Unavailable as refused:
            assert refused.code == "kek_object_invalid", refused
            assert store.get_data_key(subject) is None
            with pytest.raises(Unavailable, match="not a KEK this backend made"):
                backend.versions()
            return
        stored = store.get_data_key(subject)
        assert stored is not None
        aad = data_key_aad(jurisdiction, str(subject), stored.kek_version)
        opened = None
        if how != "generated-public":
            try:
                opened = AESGCM(KNOWN).decrypt(stored.wrapped[1:1 + NONCE_BYTES],
                                               stored.wrapped[1 + NONCE_BYTES:], aad)
            except InvalidTag:  # the real KEK wrapped it: what we want
                opened = None
        else:
            opened = _public_unwrap(label, stored.wrapped, aad)
        pytest.fail(f"the key ring used the token with a planted {how} object under "
                    f"{label} (data key wrapped under version {stored.kek_version}; "
                    f"the planter opens it: {opened is not None})")
    finally:
        store.close()
        backend.close()
