"""Cedar policy bundles, evaluation and replayable decision records.

``bundle`` loads and digests a bundle directory, ``entities`` holds the values a
decision sees (``DecisionInput``), ``engine`` decides batches with parsed
cedarpy handles and replays recorded inputs, ``purpose_binding`` turns the
purposes' bound actions and roles into generated forbids.  ``default_bundle/`` is the shipped
trusted-partner policy.  The room is pure: it never reads clocks, keys or the
network, and it never releases or logs data itself (the gateway does).
"""

from __future__ import annotations

from bordergate.policy.bundle import PolicyBundle, Purpose, bundle_archive, default_bundle
from bordergate.policy.engine import Decision, PolicyEngine, replay
from bordergate.policy.entities import (
    Approval,
    ApprovalRequest,
    DecisionInput,
    Field,
    Principal,
    RequestContext,
    Subject,
)

__all__ = [
    "Approval",
    "ApprovalRequest",
    "Decision",
    "DecisionInput",
    "Field",
    "PolicyBundle",
    "PolicyEngine",
    "Principal",
    "Purpose",
    "RequestContext",
    "Subject",
    "bundle_archive",
    "default_bundle",
    "replay",
]
