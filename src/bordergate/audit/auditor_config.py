"""The auditor's configuration file (TOML): which logs to audit and whom to trust.

An auditor does not read the custodian's deployment file: it states by itself
which keys it trusts.  One ``[logs.<jurisdiction>]`` table per log::

    [auditor]
    name = "Independent monitor"      # shown in the report
    time_tolerance_s = 5              # allowed clock disorder between entries
    max_checkpoint_age_s = 3600       # witness cosignatures older than this: checkpoint_stale
    report_title = "bordergate audit" # optional
    separation = "verify.json"        # optional: `bordergate migrate verify --out F` results

    [logs.us]
    location = "demo-data/us/log"     # a log directory or an http(s) base URL
    vkey = "us.bordergate.example/log+1a2b3c4d+AY..."   # the custodian's log key
    witnesses = ["witness-a+5e6f7a8b+BA..."]             # trusted witness keys
    quorum = 1                        # distinct witnesses required (default: all)
    bundle_store = "https://..."      # where bundles/sha256-*.tar live (default: location)
    bundle_dirs = ["policy"]          # local bundle directories (digest-checked)
    reviewers = [{ name = "alice", public_key = "alice+..." }]
    required_approvals = 2            # release approvals needed (default min(2, reviewers))
    approvers = ["carol", "dave"]     # custodian principals who may grant approvals
    approver_keys = { carol = ["<base64 raw Ed25519 public key>"], dave = ["..."] }
    roster_authority = ["us-identity-authority+..."]  # the identity authority's keys
    appenders = { "us-gw-1" = "gateway", "us-release" = "release", "us-custodian" = "custodian" }
                                      # append credentials the log operator accepts, by role
    v1_k_min = 50                     # k_min of bundles without exports.toml (the
                                      # deployment's before issue 11; default 50)
    schema = "schema.toml"            # the classified schema whose DSP categories the
                                      # audit counts bulk volumes of (absent: not counted)
    countries_of_concern = ["CN", ...] # default: 28 CFR 202.601 (dsp.countries)
    bulk = { thresholds = { ... } }   # as the deployment's [dsp.bulk]; default: the text's

A checkpoint counts as the log's current state only when ``quorum`` of the
listed witnesses cosigned it within ``max_checkpoint_age_s`` seconds before the
audit (:mod:`bordergate.audit.witness_check`); ``quorum = 0`` (or no
witnesses) is accepted here but gives a ``checkpoint_unwitnessed`` finding on
every run.  The quorum counts witnesses, not keys: keys listed under one name
(a witness rotating its key) are one witness, and one public key listed twice
(under two names it would let one cosignature count twice) is refused,
``witness_key_repeated``; so is one approver key listed for two principals,
``approver_key_shared``.  Relative paths resolve against the file's directory.
When ``approvers`` is empty, any principal of a ``custodian`` organisation holding the ``approver``
role counts.  ``approver_keys`` lists each approver's own Ed25519 public keys
(``bordergate approval keygen`` prints one): every grant, denial and revocation
must carry a statement signed by one of them (:mod:`bordergate.approval_statement`),
and with no keys listed no grant counts.  The file is read by the same checked TOML reader as the
deployment file (:mod:`bordergate.config_reader`): unknown keys are refused so
that a typo never weakens an audit, strings may not begin or end with
whitespace, reviewer keys must be Ed25519 verifier keys.  There is no
``k_min`` here: the minimum subjects of an export is read from the policy
bundle each export entry names (its ``exports.toml``), the number the gateway
enforced, so gate and audit cannot disagree; a ``k_min`` key is refused.

Parsing is pure (:func:`parse_auditor_config` takes bytes); this module must
never open a log or read the keys' owners' files.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bordergate.audit.bundlestore import V1_K_MIN
from bordergate.audit.witness_check import DEFAULT_MAX_AGE
from bordergate.config_reader import ConfigReader, parse_toml, read_config_file
from bordergate.dsp.bulk import BulkSettings, parse_bulk_settings
from bordergate.dsp.countries import DEFAULT_COUNTRIES_OF_CONCERN, parse_countries
from bordergate.errors import VerificationError
from bordergate.subjects import JURISDICTION_PATTERN
from bordergate.tlog.cosignature import CosignatureVerifier, count_witnesses
from bordergate.tlog.note import Ed25519Verifier, load_ed25519_public_key

__all__ = ["AuditorConfig", "LogAudit", "load_auditor_config", "parse_auditor_config"]

@dataclass(frozen=True)
class LogAudit:
    """What the auditor trusts about one jurisdiction's log.

    Attributes:
        jurisdiction: the jurisdiction code (``us``).
        location: the log: a directory or an http(s) base URL.
        vkey: the custodian's log verifier key string.
        witnesses: trusted witness verifier key strings.
        quorum: witness cosignatures required.
        bundle_store: where ``bundles/sha256-<hex>.tar`` are published.
        bundle_dirs: local policy bundle directories (used only if their digest matches).
        reviewers: ``(name, public key)`` of the release reviewers.
        required_approvals: release approvals needed.
        approvers: principal ids allowed to grant access approvals (empty: any
            custodian principal with the ``approver`` role).
        approver_keys: ``(principal id, raw Ed25519 public keys)`` of the approvers.
        roster_authority: the jurisdiction's identity authority's Ed25519 verifier
            keys: roster versions must be signed by one (empty: every ``roster``
            entry is ``roster_invalid``, decisions are not checked against it).
        appenders: append credential id -> role (``gateway``, ``release``,
            ``custodian``) the entries must name (empty: not judged).
        v1_k_min: the deployment's ``k_min`` when its bundles had no ``exports.toml``
            (releases before issue 11; entry version 1 bundle reading rules).
        schema: the classified schema the audit counts bulk volumes by (None: it
            does not count them; :mod:`bordergate.audit.rules.bulk`).
        countries_of_concern: the auditor's list (28 CFR 202.601).
        bulk: the thresholds the audit judges counters against (28 CFR 202.205).
    """

    jurisdiction: str
    location: str
    vkey: str
    witnesses: tuple[str, ...] = ()
    quorum: int = 0
    bundle_store: str = ""
    bundle_dirs: tuple[str, ...] = ()
    reviewers: tuple[tuple[str, str], ...] = ()
    required_approvals: int = 1
    approvers: tuple[str, ...] = ()
    approver_keys: tuple[tuple[str, tuple[bytes, ...]], ...] = ()
    roster_authority: tuple[str, ...] = ()
    appenders: Mapping[str, str] = field(default_factory=dict)
    v1_k_min: int = V1_K_MIN
    schema: Path | None = None
    countries_of_concern: tuple[str, ...] = DEFAULT_COUNTRIES_OF_CONCERN
    bulk: BulkSettings = field(default_factory=BulkSettings)


@dataclass(frozen=True)
class AuditorConfig:
    """The whole auditor configuration."""

    name: str
    title: str
    time_tolerance: float
    logs: Mapping[str, LogAudit]
    max_checkpoint_age: int = DEFAULT_MAX_AGE
    separation: Path | None = None  # migrate verify results for the report (issue 15)


def load_auditor_config(path: str | Path) -> AuditorConfig:
    """Read and check an auditor configuration file.

    Raises:
        ConfigError: ``config_unreadable``, or as :func:`parse_auditor_config`.
    """
    path = Path(path)
    data = read_config_file(path, "auditor configuration")
    return parse_auditor_config(data, base_dir=path.resolve().parent, source=str(path))


def parse_auditor_config(data: bytes, *, base_dir: Path, source: str = "<auditor config>"
                         ) -> AuditorConfig:
    """Check auditor TOML; relative locations resolve against ``base_dir``.

    Raises:
        ConfigError: naming the key: ``config_syntax``, ``config_too_large``,
            ``config_missing_key``, ``config_unknown_key`` or ``config_invalid``
            (bad keys included).
    """
    return _Reader(source, base_dir).config(parse_toml(data, source))


class _Reader(ConfigReader):
    """Walks the auditor document with the checked reader's rules."""

    def config(self, doc: dict[str, Any]) -> AuditorConfig:
        top = self.table(doc, "", {"auditor", "logs"})
        auditor = self.table(top.get("auditor"), "auditor",
                             {"name", "k_min", "time_tolerance_s", "report_title",
                              "max_checkpoint_age_s", "separation"},
                             required=False)
        self.no_k_min(auditor, "auditor")
        tolerance = self.integer(auditor, "auditor", "time_tolerance_s", 5, low=0, high=86400)
        max_age = self.integer(auditor, "auditor", "max_checkpoint_age_s", DEFAULT_MAX_AGE,
                               low=10, high=31 * 86400)
        logs = top.get("logs")
        if not isinstance(logs, dict) or not logs:
            raise self.fail("logs", "at least one [logs.<jurisdiction>] table needed",
                            "config_missing_key")
        parsed = {code: self.log(code, body) for code, body in logs.items()}
        return AuditorConfig(
            name=self.text(auditor, "auditor", "name", "bordergate auditor"),
            title=self.text(auditor, "auditor", "report_title", "bordergate audit report"),
            time_tolerance=float(tolerance), logs=parsed, max_checkpoint_age=max_age,
            separation=self.path(auditor, "auditor", "separation")
            if "separation" in auditor else None)

    def no_k_min(self, doc: Mapping[str, Any], key: str) -> None:
        """Refuse ``k_min``: it is the policy bundle's (exports.toml)."""
        if "k_min" in doc:
            raise self.fail(f"{key}.k_min", "the minimum subjects of an export is read from "
                            "the policy bundle each export names (exports.toml)",
                            "config_unknown_key")

    def log(self, code: str, body: object) -> LogAudit:
        key = f"logs.{code}"
        if JURISDICTION_PATTERN.fullmatch(code) is None:
            raise self.fail(key, "a jurisdiction code is 2-8 lowercase letters")
        doc = self.table(body, key, {"location", "vkey", "witnesses", "quorum", "bundle_store",
                                     "bundle_dirs", "reviewers", "required_approvals",
                                     "approvers", "approver_keys", "k_min",
                                     "roster_authority", "appenders", "v1_k_min",
                                     "schema", "countries_of_concern", "bulk"})
        self.no_k_min(doc, key)
        vkey = self.text(doc, key, "vkey")
        try:
            Ed25519Verifier.from_key_string(vkey)
        except VerificationError as exc:
            raise self.fail(f"{key}.vkey", f"not a log verifier key: {exc}") from None
        witnesses = self.texts(doc, key, "witnesses")
        distinct = self.witnesses(witnesses, f"{key}.witnesses")
        quorum = self.integer(doc, key, "quorum", distinct, low=0, high=distinct)
        location = self.source_of(doc, key, "location")
        store = self.source_of(doc, key, "bundle_store", location)
        dirs = tuple(self.log_source(d, f"{key}.bundle_dirs[{i}]").target
                     for i, d in enumerate(self.texts(doc, key, "bundle_dirs")))
        reviewers = self.reviewers(doc, key, "reviewers")
        required = self.integer(doc, key, "required_approvals", min(2, len(reviewers)) or 1,
                                low=1, high=64)
        if reviewers and required > len(reviewers):
            raise self.fail(f"{key}.required_approvals", "exceeds the number of reviewers")
        authority = self.texts(doc, key, "roster_authority")
        for i, k in enumerate(authority):
            try:
                Ed25519Verifier.from_key_string(k)
            except VerificationError as exc:
                raise self.fail(f"{key}.roster_authority[{i}]",
                                f"not an Ed25519 verifier key: {exc}") from None
        return LogAudit(
            jurisdiction=code, location=location, vkey=vkey, witnesses=witnesses,
            quorum=quorum, bundle_store=store, bundle_dirs=dirs, reviewers=reviewers,
            required_approvals=required, approvers=self.texts(doc, key, "approvers"),
            approver_keys=self.approver_keys(doc, key), roster_authority=authority,
            appenders=self.appenders(doc, key),
            v1_k_min=self.integer(doc, key, "v1_k_min", V1_K_MIN, low=1, high=1_000_000),
            schema=self.path(doc, key, "schema") if "schema" in doc else None,
            **self.dsp(doc, key))

    def dsp(self, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
        """``countries_of_concern`` and ``bulk``, checked as the deployment's."""
        out: dict[str, Any] = {}
        try:
            if "countries_of_concern" in doc:
                out["countries_of_concern"] = parse_countries(doc["countries_of_concern"])
            if "bulk" in doc:
                bulk = doc["bulk"]
                out["bulk"] = parse_bulk_settings(bulk if isinstance(bulk, dict) else {"?": 0})
        except ValueError as exc:
            raise self.fail(f"{key}.bulk or countries_of_concern", str(exc)) from None
        return out

    def witnesses(self, keys: tuple[str, ...], where: str) -> int:
        """Check the witness keys; return how many distinct witnesses they are.

        Several keys under one name (a rotation) are one witness.  One public key
        listed twice is refused (``witness_key_repeated``): under two names it
        would let one cosignature count as two witnesses, since cosignature/v1
        does not sign the name (promise 5; the quorum counts it once anyway).
        """
        parsed: list[CosignatureVerifier] = []
        holder: dict[bytes, str] = {}
        for i, text in enumerate(keys):
            try:
                verifier = CosignatureVerifier.from_key_string(text)
            except VerificationError as exc:
                raise self.fail(f"{where}[{i}]", f"not a witness key: {exc}") from None
            first = holder.get(verifier.public_key)
            if first is not None:
                raise self.fail(f"{where}[{i}]", f"the public key of {verifier.name!r} is "
                                f"already listed (for {first!r}): one key is one witness, "
                                "list it once", "witness_key_repeated")
            holder[verifier.public_key] = verifier.name
            parsed.append(verifier)
        return count_witnesses(((v.name, v.key_id) for v in parsed), parsed)

    def approver_keys(self, doc: Mapping[str, Any], key: str
                      ) -> tuple[tuple[str, tuple[bytes, ...]], ...]:
        """``approver_keys``: principal id -> base64 raw Ed25519 public keys.

        One key listed for two principals is refused (``approver_key_shared``):
        its holder's one signature would count as two distinct approvers.
        """
        value = doc.get("approver_keys", {})
        where = f"{key}.approver_keys"
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table of principal id -> [public keys]")
        out = []
        holder: dict[bytes, str] = {}
        for who in value:
            keys = []
            for i, text in enumerate(self.texts(value, where, who)):
                try:
                    raw = base64.b64decode(text, validate=True)
                except (binascii.Error, ValueError):
                    raw = b""
                try:
                    load_ed25519_public_key(raw)
                except VerificationError as exc:  # a small-order key included
                    raise self.fail(f"{where}.{who}[{i}]",
                                    f"not a base64 raw Ed25519 key: {exc}") from None
                first = holder.setdefault(raw, who)
                if first != who:
                    raise self.fail(f"{where}.{who}[{i}]", f"this key is also listed for "
                                    f"{first!r}: one key holder would count as two approvers",
                                    "approver_key_shared")
                keys.append(raw)
            out.append((who, tuple(keys)))
        return tuple(out)

    def appenders(self, doc: Mapping[str, Any], key: str) -> dict[str, str]:
        """``appenders``: credential id -> a role of ``ROLE_TYPES``."""
        from bordergate.audit.rules.appenders import ROLE_TYPES
        table = self.table(doc.get("appenders"), f"{key}.appenders",
                           set(doc.get("appenders") or {}), required=False)
        out = {}
        for name, role in table.items():
            if role not in ROLE_TYPES:
                raise self.fail(f"{key}.appenders.{name}",
                                f"a role is one of {', '.join(sorted(ROLE_TYPES))}")
            out[name] = role
        return out

    def source_of(self, doc: Mapping[str, Any], key: str, name: str,
                  default: str | None = None) -> str:
        """A log source location (directory or http(s) URL) as its resolved text."""
        return self.log_source(self.text(doc, key, name, default), f"{key}.{name}").target
