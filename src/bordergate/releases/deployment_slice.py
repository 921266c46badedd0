"""The deployment settings a release covers: one slice per jurisdiction (promise 6).

Every setting that changes a decision, or what evidence means, is part of the
reviewed release; a gateway whose deployment file gives another value refuses
to start naming the setting.  The slice of jurisdiction ``code``::

    {"jurisdiction": "us", "digest": "sha256:<hex of the canonical settings>",
     "settings": {
       "profile": "production",                  what is relaxed
       "schema": "sha256:<hex of the schema file>",
       "policy_bundle": "sha256:<tree digest>",
       "k_min": 5,                               from the bundle's exports.toml
       "purposes": ["care", ...],                the bundle's declared purposes
       "privacy": {"epsilon_micro": ..., "delta_exponent": ..., "principal_budget_micro": ...,
                   "dataset_budget_micro": ..., "period_s": ...},
       "limits": {"max_body_bytes": ..., "max_fields": ..., "max_approval_seconds": ...,
                  "max_export_groups": ..., "token_leeway": ..., "max_token_lifetime": ...},
       "issuer": {"issuer": ..., "audience": ..., "keys": ["sha256:<hex of a key file>", ...]},
       "log": {"origin": ..., "key": "<the log's verifier key>",
               "witnesses": [{"url": ..., "vkey": ...}], "quorum": n},
       "reviewers": [{"name": ..., "public_key": ...}], "required_approvals": n,
       "gateway_urls": {"eu": "https://...", ...},   the map clients trust
       "roster_authority_keys": ["us-identity-authority+..."] or null (no roster),
       "countries_of_concern": ["CN", "CU", ...],   28 CFR 202.601, reviewed
       "bulk": {"thresholds": {...}, "actions": {...}, "devices_per_subject": 1,
                "window_s": ..., "margin_s": ..., ...},   28 CFR 202.205, reviewed
       "key_service": {"url": ..., "cache_seconds": ..., "window_seconds": ...}}}
                                                 only when the jurisdiction has one

The log's verifier key is who the log operator is: the gateway believes the
release entries its self-check reads, and every entry it follows, under that
key alone, so without it in the slice a custodian could sign a log of its own
under the same origin, copy the real log's release and review entries into
it, and start "reviewed" against it.

The key service's settings (issue 13) change what evidence means: its URL is
who holds the KEKs, ``window_seconds`` how old a decision may justify a key
and ``cache_seconds`` how long a gateway that stops logging can still open
what it cached.  They are in the slice only when configured, so slices of
deployments without a key service keep their digests; adding, removing or
changing one is a difference naming ``key_service``.

Only the jurisdiction's own settings and the deployment-wide ones (schema,
policy, privacy, limits, URL map) are in its slice: changing another
jurisdiction's reviewers changes no slice here.  Settings that change no
decision (listen and admin addresses, store, key backend and log locations,
the sequencer URL, file paths themselves) are outside (docs/config.md).
Facts that must change at once (roster versions, token revocations, budget
spending) are not settings: they are live, signed entries of the log.

:func:`deployment_slice` reads the files the settings name (schema, issuer
keys, policy bundle) once, through :func:`read_settings_files`; the rest is
pure.  The gateway loads its schema and issuer keys from those same bytes
(:class:`SettingsFiles`), never from a second read of the files, which a
custodian could answer with other bytes than the ones checked.  It must never
write anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bordergate.entries import canonical_json
from bordergate.errors import ConfigError, VerificationError
from bordergate.tree_digest import DIGEST_PREFIX, digest_files

if TYPE_CHECKING:
    from bordergate.config import Deployment

__all__ = ["DeploymentSlice", "SettingsFiles", "deployment_slice", "diff_settings",
           "parse_deployment_slice", "read_settings_files"]

#: the identity authority's roster keys (null: the jurisdiction names no roster)
ROSTER_AUTHORITY_KEYS = "roster_authority_keys"
#: the countries of concern (28 CFR 202.601) as ISO codes: a reviewed setting
COUNTRIES_OF_CONCERN = "countries_of_concern"
#: the key service's URL, data-key cache lifetime and freshness window (issue 13)
KEY_SERVICE = "key_service"
#: the bulk thresholds and actions (28 CFR 202.205): a reviewed setting
BULK = "bulk"
MAX_SETTINGS_BYTES = 16 * 1024


@dataclass(frozen=True)
class DeploymentSlice:
    """The decision-relevant settings of one jurisdiction (module docstring)."""

    jurisdiction: str
    settings: Mapping[str, Any]

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical settings."""
        return DIGEST_PREFIX + hashlib.sha256(canonical_json(dict(self.settings))).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"jurisdiction": self.jurisdiction, "digest": self.digest,
                "settings": dict(self.settings)}


@dataclass(frozen=True)
class SettingsFiles:
    """The contents of the files a slice covers, read once (schema, issuer keys, log key).

    Attributes:
        schema: the schema file's bytes.
        issuer_keys: each issuer public key file's bytes, in the configured order.
        log_key: the log's verifier key string (from ``vkey_file``, or the
            development ``key_file``).
    """

    schema: bytes
    issuer_keys: tuple[bytes, ...]
    log_key: str


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}",
                          code="deployment_file_unreadable") from None


def _digest(data: bytes) -> str:
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def read_settings_files(deployment: Deployment, code: str) -> SettingsFiles:
    """Read, once, the schema, issuer key and log key files jurisdiction ``code``'s
    slice covers.

    Raises:
        ConfigError: ``deployment_file_unreadable``; ``log_vkey_unreadable``,
            ``log_vkey_invalid`` or ``log_origin_mismatch`` (the log's key).
    """
    from bordergate.log_access import log_verifier
    j = deployment.jurisdiction(code)
    return SettingsFiles(_read(deployment.schema_path, "schema"),
                         tuple(_read(k, "issuer key") for k in j.issuer.public_key_files),
                         log_verifier(j).key_string)


def deployment_slice(deployment: Deployment, code: str,
                     policy_files: tuple[tuple[str, bytes], ...] | None = None,
                     files: SettingsFiles | None = None) -> DeploymentSlice:
    """The slice of jurisdiction ``code`` of ``deployment``.

    Args:
        deployment: the loaded deployment file.
        code: the jurisdiction.
        policy_files: the policy bundle bytes already read (default: read the directory).
        files: the schema and issuer key bytes already read (default: read them);
            whoever then runs with these settings must load exactly these bytes.

    Raises:
        ConfigError: a file the settings name cannot be read, or the bundle is invalid.
    """
    from bordergate.policy.bundle import PolicyBundle
    from bordergate.tree_digest import read_tree
    j = deployment.jurisdiction(code)
    if files is None:
        files = read_settings_files(deployment, code)
    if len(files.issuer_keys) != len(j.issuer.public_key_files):
        raise ValueError("files were read for another jurisdiction")  # programmer misuse
    policy = policy_files if policy_files is not None else \
        tuple(read_tree(deployment.policy_bundle_path))
    bundle = PolicyBundle(policy, source=str(deployment.policy_bundle_path))
    p, lim = deployment.privacy, deployment.limits
    settings: dict[str, Any] = {
        "profile": deployment.profile.value,
        "schema": _digest(files.schema),
        "policy_bundle": digest_files(policy).digest,
        "k_min": bundle.k_min,
        "purposes": sorted(bundle.purposes),
        "privacy": {"epsilon_micro": p.epsilon_micro, "delta_exponent": p.delta_exponent,
                    "principal_budget_micro": p.principal_budget_micro,
                    "dataset_budget_micro": p.dataset_budget_micro, "period_s": p.period_s},
        "limits": {"max_body_bytes": lim.max_body_bytes, "max_fields": lim.max_fields,
                   "max_approval_seconds": lim.max_approval_seconds,
                   "max_export_groups": lim.max_export_groups,
                   "token_leeway": lim.token_leeway,
                   "max_token_lifetime": lim.max_token_lifetime},
        "issuer": {"issuer": j.issuer.issuer, "audience": j.issuer.audience,
                   "keys": sorted(_digest(k) for k in files.issuer_keys)},
        "log": {"origin": j.log.origin, "key": files.log_key, "quorum": j.log.quorum,
                "witnesses": sorted(({"url": w.url, "vkey": w.vkey} for w in j.log.witnesses),
                                    key=lambda w: (w["url"], w["vkey"]))},
        "reviewers": sorted(({"name": r.name, "public_key": r.public_key}
                             for r in j.reviewers), key=lambda r: r["name"]),
        "required_approvals": j.required_approvals,
        "gateway_urls": dict(sorted(deployment.gateway_urls().items())),
        ROSTER_AUTHORITY_KEYS: _roster_authority_keys(j),
        COUNTRIES_OF_CONCERN: list(deployment.countries_of_concern),
        BULK: deployment.bulk.to_json(),
    }
    if j.key_service is not None:
        ks = j.key_service
        settings[KEY_SERVICE] = {"url": ks.url, "cache_seconds": ks.cache_seconds,
                                 "window_seconds": ks.window_seconds}
    return DeploymentSlice(code, settings)


def _roster_authority_keys(j: Any) -> list[str] | None:
    """The identity authority's verifier keys the gateway trusts for rosters
    (sorted), or None when the jurisdiction names no roster authority."""
    if j.roster is None:
        return None
    from bordergate.tlog.logdir import read_signer
    keys = set(j.roster.authority_keys)
    key_file = j.roster.authority_key_file
    if key_file is not None and key_file.exists():
        keys.add(read_signer(key_file).verifier().key_string)
    return sorted(keys)


def parse_deployment_slice(obj: Any) -> DeploymentSlice:
    """Check a manifest's ``deployment`` member read from a log.

    Raises:
        VerificationError: ``malformed_manifest``.
    """
    def bad(what: str) -> VerificationError:
        return VerificationError(f"release manifest deployment: {what}",
                                 code="malformed_manifest")
    if not isinstance(obj, dict) or set(obj) != {"jurisdiction", "digest", "settings"}:
        raise bad("not {jurisdiction, digest, settings}")
    if not isinstance(obj["jurisdiction"], str) or not isinstance(obj["settings"], dict):
        raise bad("jurisdiction is not a string or settings not an object")
    if len(canonical_json(obj["settings"])) > MAX_SETTINGS_BYTES:
        raise bad(f"settings over {MAX_SETTINGS_BYTES} bytes")
    found = DeploymentSlice(obj["jurisdiction"], obj["settings"])
    if found.digest != obj["digest"]:
        raise bad("digest does not match the settings")
    return found


def diff_settings(approved: DeploymentSlice, running: DeploymentSlice) -> list[str]:
    """The settings whose values differ, one ``name: approved -> running`` line each."""
    out = []
    if approved.jurisdiction != running.jurisdiction:
        out.append(f"jurisdiction: {approved.jurisdiction} -> {running.jurisdiction}")
    a, b = approved.settings, running.settings
    for name in sorted(a.keys() | b.keys()):
        if a.get(name) != b.get(name):
            out.append(f"{name}: {_short(a.get(name))} -> {_short(b.get(name))}")
    return out


def _short(value: Any) -> str:
    text = canonical_json(value).decode() if value is not None else "absent"
    return text if len(text) <= 120 else text[:117] + "..."
