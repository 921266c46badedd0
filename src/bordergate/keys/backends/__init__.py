"""Key backends, one module each: ``keyfile`` (default), ``hsm`` (PKCS#11), ``memory`` (twin).

Import the one you need; :func:`bordergate.keys.backend.open_key_backend`
chooses by configuration.  This package must never import an optional
backend's library at import time.
"""

__all__: list[str] = []
