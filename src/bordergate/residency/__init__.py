"""Where data lives (promise 1): the classified schema, home-bound subject ids, stores, the vault.

The gateway uses :class:`bordergate.residency.vault.Vault`; the other modules
are its parts.  This package must never hold a protected value in clear
beyond the call that asked for it.
"""

__all__: list[str] = []
