"""Deployment profiles: what a demo or a development deployment may relax.

A deployment file names one ``profile``: ``production`` (the default),
``development`` or ``demo``.  Production relaxes nothing; the other two allow
what a laptop needs and an operated deployment must not do silently.  The
table of docs/config.md lists exactly what each profile relaxes; this module
is the one place the code asks.  It must never read files or the environment.
"""

from __future__ import annotations

import enum

from bordergate.errors import ConfigError

__all__ = ["Profile", "refuse_unreviewed"]


class Profile(enum.Enum):
    """The profile a deployment runs under."""

    DEMO = "demo"
    DEVELOPMENT = "development"
    PRODUCTION = "production"

    @property
    def packaged_fallbacks(self) -> bool:
        """Whether a missing ``schema``/``policy_bundle`` falls back to the packaged demo ones."""
        return self is not Profile.PRODUCTION

    @property
    def allows_unwitnessed_log(self) -> bool:
        """Whether a log may publish with witness quorum 0 (no cosignature needed)."""
        return self is not Profile.PRODUCTION

    @property
    def requires_attested_runtime(self) -> bool:
        """Whether a gateway must run from its attested runtime (``runtime_boot``)."""
        return self is Profile.PRODUCTION

    @property
    def allows_unregistered_receipt_key(self) -> bool:
        """Whether a gateway may sign receipts with a key the deployment file does not
        list (``receipts.public_keys``); its ``gateway-start`` entry still names it."""
        return self is not Profile.PRODUCTION

    @property
    def allows_unreviewed(self) -> bool:
        """Whether a gateway may start ``--unreviewed`` (logged; flagged by every audit)."""
        return self is not Profile.PRODUCTION


def refuse_unreviewed(profile: Profile) -> None:
    """Refuse ``--unreviewed`` unless the profile allows it.

    Raises:
        ConfigError: ``unreviewed_refused`` under the production profile.
    """
    if not profile.allows_unreviewed:
        raise ConfigError("--unreviewed is refused by the production profile (set "
                          'profile = "development" in [deployment] to develop)',
                          code="unreviewed_refused")
