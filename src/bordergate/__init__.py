"""bordergate: jurisdiction-bound personal data behind a logged policy gate.

The package is split into one room per concern (see docs/design.md):
``tlog`` (the verifiable log), ``residency`` (where data lives), ``keys`` (key
custody), ``policy`` (Cedar decisions), ``gateway`` (the HTTP API),
``releases`` (reviewed code and policy), ``audit`` (the auditor's checks).
This top-level module must never import those rooms, so that importing one
room never drags in the others.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
