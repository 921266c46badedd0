"""Where data lives (promise 1): the classified schema, stores, the vault.

Home-bound subject ids are :mod:`bordergate.subjects`, shared with ``keys``.

The gateway uses :class:`bordergate.residency.vault.Vault`; the other modules
are its parts.  This package must never hold a protected value in clear
beyond the call that asked for it.
"""

__all__: list[str] = []
