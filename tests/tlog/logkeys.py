"""TEST-ONLY log keys from fixed seeds. Never use these outside the test suite."""

from __future__ import annotations

from bordergate.tlog.note import Signer


def log_signer(origin: str = "test.bordergate.example/log") -> Signer:
    """A deterministic Ed25519 log signer (seed fixed, test-only)."""
    return Signer.from_seed(origin, bytes(range(32)))
