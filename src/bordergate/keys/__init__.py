"""Key custody per jurisdiction (promises 1 and 8): envelope encryption, key backends,
rotation, crypto-shredding and the key events an auditor sees.

Start at :class:`bordergate.keys.keyring.KeyRing`.  This package must never
log, persist (outside a key backend) or return raw key bytes.
"""

__all__: list[str] = []
