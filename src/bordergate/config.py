"""The deployment file: one TOML file describing every jurisdiction of a deployment.

A deployment names its jurisdictions (code, custodian, gateway address, store,
key backend, log, witnesses, token issuer, release reviewers), the classified
schema, the policy bundle, the ``k`` of exports and the request limits.  Paths
are relative to the file's directory.  See docs/config.md for an annotated
example; ``demo_config.toml`` beside this module is the shipped example.

Everything is checked at load by the one checked TOML reader
(:mod:`bordergate.config_reader`, shared with the auditor's file): a wrong file
raises :class:`ConfigError` whose message names the offending key
(``jurisdictions.us.log.origin: ...``), and unknown keys are refused so that a
typo never silently falls back to a default.

The ``profile`` (:mod:`bordergate.profile`: ``production``, the default,
``development`` or ``demo``) decides what may be left out: under production a
missing ``schema`` or ``policy_bundle`` and a log with witness quorum 0 are
refused; the other profiles fall back to the packaged demo schema and
trusted-partner bundle.  docs/config.md has the full table.

This module only reads and checks the file: it must never open stores, keys or
logs, start servers or read the secrets the file points to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from bordergate.config_reader import ConfigReader, parse_toml, read_config_file
from bordergate.dsp.bulk import BulkSettings, parse_bulk_settings
from bordergate.dsp.countries import DEFAULT_COUNTRIES_OF_CONCERN, parse_countries
from bordergate.errors import ConfigError, VerificationError
from bordergate.keys.backend import KeyBackendSettings, parse_key_backend
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.privacy.budget import PrivacySettings
from bordergate.profile import Profile
from bordergate.subjects import JURISDICTION_PATTERN
from bordergate.tlog.note import Ed25519Verifier

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "Deployment",
    "IssuerSettings",
    "Jurisdiction",
    "KeyServiceSettings",
    "Limits",
    "LogSettings",
    "Profile",
    "ReceiptSettings",
    "Reviewer",
    "RosterSettings",
    "SequencerClient",
    "SequencerSettings",
    "Witness",
    "default_admin_listen",
    "demo_config_path",
    "load_config",
    "parse_config",
    "parse_listen",
]

DEFAULT_CONFIG_NAME = "bordergate.toml"


def demo_config_path() -> Path:
    """Where the shipped example deployment (us, eu, cn on loopback) lives."""
    return Path(__file__).parent / "demo_config.toml"


def _witness_marks(vkey: str) -> tuple[object, ...]:
    """A witness verifier key's name and public key, to find one witness listed twice
    (none for a key that does not parse: its use refuses it)."""
    from bordergate.tlog.cosignature import CosignatureVerifier
    try:
        verifier = CosignatureVerifier.from_key_string(vkey)
    except (VerificationError, ValueError):
        return ()
    return (("name", verifier.name), ("key", verifier.public_key))


@dataclass(frozen=True)
class Witness:
    """A witness that cosigns this jurisdiction's checkpoints."""

    url: str
    vkey: str


@dataclass(frozen=True)
class SequencerClient:
    """How appenders reach the log operator's sequencer process (``log.sequencer``).

    Attributes:
        url: the sequencer service.
        credential_file: the gateway worker's append credential (``ID.SECRET``).
        release_credential_file: the release tooling's (``bordergate release``).
        custodian_credential_file: the key custodian's (``bordergate keys``,
            ``gateway revoke-token``).
    """

    url: str
    credential_file: Path
    release_credential_file: Path | None = None
    custodian_credential_file: Path | None = None

    def credential_files(self) -> tuple[Path, ...]:
        """Every credential file named (``gateway init`` provisions them)."""
        return tuple(p for p in (self.credential_file, self.release_credential_file,
                                 self.custodian_credential_file) if p is not None)


@dataclass(frozen=True)
class SequencerSettings:
    """The log operator's own process (``[jurisdictions.X.sequencer]``), read only by
    ``bordergate log sequencer --config F --jurisdiction X`` and ``gateway init``.

    Attributes:
        listen_host, listen_port: where the service listens.
        key_file: the log key (only this process reads it).
        credentials_file: the credential list (``ID sha256:HEX`` lines) it accepts.
    """

    listen_host: str
    listen_port: int
    key_file: Path
    credentials_file: Path


@dataclass(frozen=True)
class LogSettings:
    """Where a jurisdiction's log lives and who signs and witnesses it.

    Attributes:
        storage: a directory (absolute) or a ``postgresql://`` URL
            (:func:`bordergate.locations.parse_log_location`).
        origin: the log's origin line (its name in checkpoints).
        key_file: the log key, for a gateway that runs the sequencer in
            process (development profile only; None when not named).
        vkey_file: the log's verifier key (what readers check checkpoints with).
        pseudonym_secret_file: the per-log secret of the keyed pseudonyms.
        sequencer: the log operator's sequencer process, if any (else in-process).
        witnesses: witnesses asked to cosign checkpoints.
        quorum: how many witness cosignatures a checkpoint needs.
    """

    storage: str
    origin: str
    key_file: Path | None
    pseudonym_secret_file: Path
    vkey_file: Path | None = None
    sequencer: SequencerClient | None = None
    witnesses: tuple[Witness, ...] = ()
    quorum: int = 0

    @property
    def sequencer_url(self) -> str | None:
        """The sequencer service's URL, None for an in-process sequencer."""
        return None if self.sequencer is None else self.sequencer.url


@dataclass(frozen=True)
class IssuerSettings:
    """The token issuer a jurisdiction's gateway trusts.

    Attributes:
        issuer: the expected ``iss`` claim.
        audience: the expected ``aud`` claim (default: the jurisdiction code).
        public_key_files: trusted issuer public keys (PEM or JWK files).
        private_key_file: development and demo only: where ``gateway init``
            creates the issuer's private key (a real issuer keeps it elsewhere).
    """

    issuer: str
    audience: str
    public_key_files: tuple[Path, ...]
    private_key_file: Path | None = None


@dataclass(frozen=True)
class RosterSettings:
    """The identity authority whose signed roster gives principals' attributes
    (``bordergate.roster``; without it, attributes are the token's claims).

    Attributes:
        authority_keys: the authority's Ed25519 verifier key strings.
        authority_key_file: development and demo only (TEST-ONLY key, refused by
            the production profile): where ``gateway init`` creates the
            authority's signing key, whose public half is then trusted too.
    """

    authority_keys: tuple[str, ...] = ()
    authority_key_file: Path | None = None


@dataclass(frozen=True)
class Reviewer:
    """A custodian reviewer of releases: a name and an Ed25519 public key."""

    name: str
    public_key: str


@dataclass(frozen=True)
class ReceiptSettings:
    """The gateway's receipt key (docs/gateway.md, "Receipts").

    Attributes:
        key_file: this gateway's Ed25519 receipt signing key (``gateway init``
            creates it); each worker may have its own.
        public_keys: the registered receipt verifier keys of this jurisdiction's
            gateways; a gateway whose key is not listed refuses to start
            (required, non-empty, under the production profile).
    """

    key_file: Path
    public_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeyServiceSettings:
    """The jurisdiction's key service (``[jurisdictions.X.key_service]``; issue 13):
    the process that holds the KEKs (``bordergate keys serve``) and releases a data
    key only against a logged decision (:mod:`bordergate.keys.service`).

    Attributes:
        url: where gateways reach it.
        listen_host, listen_port: where ``keys serve`` listens (loopback by default).
        credential_file: the gateway's credential to the key service (``ID.SECRET``).
        credentials_file: the credential list (``ID sha256:HEX`` lines) the key
            service accepts (read only by ``keys serve``).
        append_credential_file: the key service's append credential to the log's
            sequencer service (its ``key-access`` entries; role ``key-service``).
        window_seconds: how old a justifying entry may be.
        cache_seconds: how long a gateway may keep a released data key (0: never).
    """

    url: str
    listen_host: str
    listen_port: int
    credential_file: Path
    credentials_file: Path
    append_credential_file: Path
    window_seconds: int = 30
    cache_seconds: int = 10


@dataclass(frozen=True)
class Jurisdiction:
    """One jurisdiction: its custodian, gateway, store, keys, log and issuer."""

    code: str
    custodian: str
    listen_host: str
    listen_port: int
    public_url: str
    store: str
    keys: KeyBackendSettings
    log: LogSettings
    issuer: IssuerSettings
    reviewers: tuple[Reviewer, ...] = ()
    required_approvals: int = 1
    admin_host: str = "127.0.0.1"
    admin_port: int = 0
    roster: RosterSettings | None = None
    sequencer: SequencerSettings | None = None
    receipts: ReceiptSettings | None = None
    key_service: KeyServiceSettings | None = None

    def receipt_key_file(self) -> Path:
        """The receipt key file: configured, or (development and demo, where the
        ``receipts`` table may be left out) ``receipt.key`` beside the pseudonym
        secret."""
        if self.receipts is not None:
            return self.receipts.key_file
        return self.log.pseudonym_secret_file.with_name("receipt.key")


@dataclass(frozen=True)
class Limits:
    """Caps applied before parsing anything a caller sends."""

    max_body_bytes: int = 64 * 1024
    max_fields: int = 64
    max_approval_seconds: int = 8 * 3600
    max_export_groups: int = 10_000
    token_leeway: int = 30
    readiness_max_backlog: int = 100_000
    max_token_lifetime: int = 3600


@dataclass(frozen=True)
class Deployment:
    """A whole deployment, checked.

    Attributes:
        path: the file it was read from.
        base_dir: the directory relative paths were resolved against.
        name: a label for people.
        profile: what the deployment may relax (:class:`~bordergate.profile.Profile`).
        schema_path: the classified schema file.
        policy_bundle_path: the Cedar policy bundle directory.
        limits: request limits.
        jurisdictions: by code.
        privacy: epsilon per export and budgets per principal and dataset per
            period (``[privacy]``; docs/exports.md).
        countries_of_concern: ISO 3166-1 alpha-2 codes (``[dsp]``; a reviewed
            setting in every deployment slice; docs/compliance.md).
        bulk: the bulk thresholds and actions (``[dsp.bulk]``; 28 CFR 202.205, a
            reviewed setting in every deployment slice; docs/compliance.md).
    """

    path: Path
    base_dir: Path
    name: str
    schema_path: Path
    policy_bundle_path: Path
    limits: Limits
    jurisdictions: Mapping[str, Jurisdiction] = field(default_factory=dict)
    profile: Profile = Profile.PRODUCTION
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    countries_of_concern: tuple[str, ...] = DEFAULT_COUNTRIES_OF_CONCERN
    bulk: BulkSettings = field(default_factory=BulkSettings)

    def jurisdiction(self, code: str) -> Jurisdiction:
        """The jurisdiction called ``code``.

        Raises:
            ConfigError: ``unknown_jurisdiction`` if the deployment has none.
        """
        found = self.jurisdictions.get(code)
        if found is None:
            known = ", ".join(sorted(self.jurisdictions))
            raise ConfigError(f"{self.path}: no jurisdiction {code!r} (known: {known})",
                              code="unknown_jurisdiction")
        return found

    def gateway_urls(self) -> dict[str, str]:
        """Public gateway URL of every jurisdiction, by code (for 421 answers)."""
        return {code: j.public_url for code, j in self.jurisdictions.items()}


def load_config(path: str | Path) -> Deployment:
    """Read and check a deployment file.

    Raises:
        ConfigError: ``config_unreadable`` if the file cannot be read, else as
            :func:`parse_config`.
    """
    path = Path(path)
    data = read_config_file(path, "deployment file")
    return parse_config(data, base_dir=path.resolve().parent, path=path)


def parse_config(data: bytes | str, *, base_dir: Path, path: Path | None = None) -> Deployment:
    """Check deployment TOML text; relative paths resolve against ``base_dir``.

    Raises:
        ConfigError: naming the key: ``config_syntax`` (not TOML),
            ``config_missing_key`` (also ``schema``/``policy_bundle`` left out
            under the production profile), ``config_unknown_key``,
            ``config_invalid``, ``config_too_large``, ``key_backend_config``.
    """
    source = path or Path("<config>")
    doc = parse_toml(data, str(source))
    return _Reader(source, base_dir.resolve()).deployment(doc)


_PROFILES = {p.value: p for p in Profile}


def parse_listen(value: str) -> tuple[str, int] | None:
    """``host:port`` (IPv6 hosts in brackets) as (host, port), or None if malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def default_admin_listen(port: int) -> str:
    """The admin listener's default address: loopback, the public port + 1000
    (- 1000 when that is past 65535)."""
    return f"127.0.0.1:{port + 1000 if port + 1000 < 65536 else port - 1000}"


class _Reader(ConfigReader):
    """Walks the deployment document with the checked reader's rules."""

    def __init__(self, source: Path, base_dir: Path) -> None:
        super().__init__(str(source), base_dir)
        self.path_of_file = source

    def deployment(self, doc: dict[str, Any]) -> Deployment:
        top_doc = self.table(doc, "", {"deployment", "limits", "jurisdictions", "privacy",
                                       "dsp"})
        top = self.table(top_doc.get("deployment"), "deployment",
                         {"name", "profile", "schema", "policy_bundle", "k_min"})
        if "k_min" in top:
            raise self.fail("deployment.k_min", "moved to the policy bundle (exports.toml), "
                            "where the gateway and the auditor both read it",
                            "config_unknown_key")
        profile = self.profile(top)
        schema = self.fallback(top, profile, "schema")
        bundle = self.fallback(top, profile, "policy_bundle")
        lim = self.table(top_doc.get("limits"), "limits", set(Limits.__dataclass_fields__),
                         required=False)
        limits = Limits(
            max_body_bytes=self.integer(lim, "limits", "max_body_bytes", 64 * 1024,
                                        low=1024, high=1 << 26),
            max_fields=self.integer(lim, "limits", "max_fields", 64, low=1, high=1024),
            max_approval_seconds=self.integer(lim, "limits", "max_approval_seconds",
                                              8 * 3600, low=60, high=366 * 24 * 3600),
            max_export_groups=self.integer(lim, "limits", "max_export_groups", 10_000,
                                           low=1, high=1_000_000),
            token_leeway=self.integer(lim, "limits", "token_leeway", 30, low=0, high=600),
            readiness_max_backlog=self.integer(lim, "limits", "readiness_max_backlog",
                                               100_000, low=1, high=1 << 40),
            max_token_lifetime=self.integer(lim, "limits", "max_token_lifetime", 3600,
                                            low=60, high=24 * 3600),
        )
        juris = top_doc.get("jurisdictions")
        if not isinstance(juris, dict) or not juris:
            raise self.fail("jurisdictions", "at least one [jurisdictions.<code>] table needed",
                            "config_missing_key")
        parsed = {code: self.jurisdiction(code, body, profile) for code, body in juris.items()}
        self.check_unique(parsed)
        return Deployment(
            path=self.path_of_file, base_dir=self.base,
            name=self.text(top, "deployment", "name", "bordergate"),
            schema_path=schema, policy_bundle_path=bundle,
            limits=limits, jurisdictions=MappingProxyType(parsed), profile=profile,
            privacy=self.privacy(top_doc.get("privacy")),
            countries_of_concern=self.countries_of_concern(top_doc.get("dsp")),
            bulk=self.bulk(top_doc.get("dsp")))

    def countries_of_concern(self, body: object) -> tuple[str, ...]:
        """``[dsp] countries_of_concern`` (default: the list of 28 CFR 202.601)."""
        doc = self.table(body, "dsp", {"countries_of_concern", "bulk"}, required=False)
        if "countries_of_concern" not in doc:
            return DEFAULT_COUNTRIES_OF_CONCERN
        try:
            return parse_countries(doc["countries_of_concern"])
        except ValueError as exc:
            raise self.fail("dsp.countries_of_concern", str(exc)) from None

    def bulk(self, body: object) -> BulkSettings:
        """``[dsp.bulk]`` (default: the thresholds of 28 CFR 202.205, action ``deny``)."""
        doc = self.table(body, "dsp", {"countries_of_concern", "bulk"}, required=False)
        bulk = doc.get("bulk", {})
        if not isinstance(bulk, dict):
            raise self.fail("dsp.bulk", "must be a table")
        try:
            return parse_bulk_settings(bulk)
        except ValueError as exc:
            raise self.fail("dsp.bulk", str(exc)) from None

    def privacy(self, body: object) -> PrivacySettings:
        """``[privacy]``: epsilon per export, budgets per period (defaults: PrivacySettings)."""
        doc = self.table(body, "privacy", {"epsilon_per_export", "delta_exponent",
                                           "principal_budget", "dataset_budget", "period_s"},
                         required=False)
        base = PrivacySettings()
        settings = PrivacySettings(
            epsilon_micro=self.epsilon(doc, "epsilon_per_export", base.epsilon_micro),
            delta_exponent=self.integer(doc, "privacy", "delta_exponent", base.delta_exponent,
                                        low=1, high=30),
            principal_budget_micro=self.epsilon(doc, "principal_budget",
                                                base.principal_budget_micro),
            dataset_budget_micro=self.epsilon(doc, "dataset_budget", base.dataset_budget_micro),
            period_s=self.integer(doc, "privacy", "period_s", base.period_s,
                                  low=60, high=366 * 86_400))
        if settings.epsilon_micro > min(settings.principal_budget_micro,
                                        settings.dataset_budget_micro):
            raise self.fail("privacy.epsilon_per_export", "exceeds a budget: no export could run")
        return settings

    def epsilon(self, doc: Mapping[str, Any], name: str, default_micro: int) -> int:
        """An epsilon (a number in (0, 100] per export, 1e6 per budget) in millionths."""
        value = doc.get(name)
        if value is None:
            return default_micro
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):  # TOML spells nan and inf
            raise self.fail(f"privacy.{name}", "must be a number")
        micro = round(value * 1_000_000)
        high = 100_000_000 if name == "epsilon_per_export" else 10**12
        if not 1 <= micro <= high:
            raise self.fail(f"privacy.{name}", f"must be in (0, {high // 1_000_000}]")
        return micro

    def profile(self, top: Mapping[str, Any]) -> Profile:
        name = self.text(top, "deployment", "profile", Profile.PRODUCTION.value)
        if name not in _PROFILES:
            raise self.fail("deployment.profile", "must be demo, development or production")
        return _PROFILES[name]

    def fallback(self, top: Mapping[str, Any], profile: Profile, name: str) -> Path:
        """``schema`` or ``policy_bundle``: configured, or packaged outside production."""
        if name in top:
            return self.path(top, "deployment", name)
        if not profile.packaged_fallbacks:
            raise self.fail(f"deployment.{name}", "missing: the production profile has no "
                            "packaged demo fallback (name the file, or set profile = "
                            '"development")', "config_missing_key")
        if name == "schema":
            from bordergate.residency.schema import demo_schema_path

            return demo_schema_path()
        return DEFAULT_BUNDLE_PATH

    def jurisdiction(self, code: str, body: object, profile: Profile) -> Jurisdiction:
        key = f"jurisdictions.{code}"
        if JURISDICTION_PATTERN.fullmatch(code) is None:
            raise self.fail(key, "a jurisdiction code is 2-8 lowercase letters")
        doc = self.table(body, key, {
            "custodian", "listen", "public_url", "store", "keys", "log", "issuer",
            "reviewers", "required_approvals", "admin_listen", "roster", "sequencer",
            "receipts", "key_service"})
        host, port = self.listen(doc, key)
        admin_host, admin_port = self.listen(doc, key, "admin_listen",
                                             default_admin_listen(port))
        public_url = self.text(doc, key, "public_url", f"http://{host}:{port}").rstrip("/")
        if urlsplit(public_url).scheme not in ("http", "https"):
            raise self.fail(f"{key}.public_url", "must be an http(s) URL")
        keys = self.table(doc.get("keys"), f"{key}.keys",
                          {"backend", "path", "library", "token", "pin_env"})
        reviewers = tuple(Reviewer(name, public)
                          for name, public in self.reviewers(doc, key, "reviewers"))
        required = self.integer(doc, key, "required_approvals",
                                min(2, len(reviewers)) or 1, low=1, high=64)
        if reviewers and required > len(reviewers):
            raise self.fail(f"{key}.required_approvals", "exceeds the number of reviewers")
        return Jurisdiction(
            code=code,
            custodian=self.text(doc, key, "custodian"),
            listen_host=host, listen_port=port, public_url=public_url,
            store=self.store(doc, key, "store").url,
            keys=parse_key_backend(keys, where=f"{self.source}: {key}.keys",
                                   base_dir=self.base),
            log=self.log(doc, key, profile),
            issuer=self.issuer(doc, key, code),
            reviewers=reviewers,
            required_approvals=required,
            admin_host=admin_host, admin_port=admin_port,
            roster=self.roster(doc, key, profile),
            sequencer=self.sequencer(doc, key),
            receipts=self.receipts(doc, key, profile),
            key_service=self.key_service(doc, key),
        )

    def key_service(self, doc: Mapping[str, Any], key: str) -> KeyServiceSettings | None:
        """``[jurisdictions.X.key_service]``: absent, or url, listen, the three
        credential files and the two lifetimes."""
        if "key_service" not in doc:
            return None
        k = f"{key}.key_service"
        ks = self.table(doc["key_service"], k, {
            "url", "listen", "credential_file", "credentials_file", "append_credential_file",
            "window_seconds", "cache_seconds"})
        url = self.text(ks, k, "url").rstrip("/")
        if urlsplit(url).scheme not in ("http", "https"):
            raise self.fail(f"{k}.url", "must be an http(s) URL")
        host, port = self.listen(ks, k, "listen", urlsplit(url).netloc or "127.0.0.1:8431")
        return KeyServiceSettings(
            url=url, listen_host=host, listen_port=port,
            credential_file=self.path(ks, k, "credential_file"),
            credentials_file=self.path(ks, k, "credentials_file"),
            append_credential_file=self.path(ks, k, "append_credential_file"),
            window_seconds=self.integer(ks, k, "window_seconds", 30, low=1, high=600),
            cache_seconds=self.integer(ks, k, "cache_seconds", 10, low=0, high=300))

    def roster(self, doc: Mapping[str, Any], key: str, profile: Profile
               ) -> RosterSettings | None:
        k = f"{key}.roster"
        if "roster" not in doc:
            if not profile.packaged_fallbacks:
                raise self.fail(k, "missing: the production profile takes principals' "
                                "attributes from the identity authority's signed roster, "
                                "never from token claims; name its authority_keys",
                                "config_missing_key")
            return None
        table = self.table(doc.get("roster"), k, {"authority_keys", "authority_key_file"})
        keys = self.texts(table, k, "authority_keys")
        key_file = None
        if "authority_key_file" in table:
            if not profile.packaged_fallbacks:
                raise self.fail(f"{k}.authority_key_file", "a local roster authority key is for "
                                "the development and demo profiles only; name the "
                                "authority's public keys in authority_keys")
            key_file = self.path(table, k, "authority_key_file")
        if not keys and key_file is None:
            raise self.fail(f"{k}.authority_keys", "must name the identity authority's "
                            "verifier keys", "config_missing_key")
        return RosterSettings(keys, key_file)

    def sequencer(self, doc: Mapping[str, Any], key: str) -> SequencerSettings | None:
        if "sequencer" not in doc:
            return None
        k = f"{key}.sequencer"
        seq = self.table(doc["sequencer"], k, {"listen", "key_file", "credentials_file"})
        host, port = self.listen(seq, k)
        return SequencerSettings(host, port, self.path(seq, k, "key_file"),
                                 self.path(seq, k, "credentials_file"))

    def receipts(self, doc: Mapping[str, Any], key: str, profile: Profile
                 ) -> ReceiptSettings | None:
        """``receipts = {key_file, public_keys}``: required with registered keys under
        production; left out elsewhere, the key file defaults to ``receipt.key``
        beside the pseudonym secret and no key is registered here."""
        k = f"{key}.receipts"
        if "receipts" not in doc:
            if not profile.allows_unregistered_receipt_key:
                raise self.fail(k, "missing: the production profile needs the gateway's "
                                "receipt key_file and its registered public_keys",
                                "config_missing_key")
            return None
        body = self.table(doc.get("receipts"), k, {"key_file", "public_keys"})
        keys = tuple(self.texts(body, k, "public_keys")) if "public_keys" in body else ()
        for i, vkey in enumerate(keys):
            try:
                Ed25519Verifier.from_key_string(vkey)
            except VerificationError as exc:
                raise self.fail(f"{k}.public_keys[{i}]", f"not an Ed25519 verifier key: {exc}"
                                ) from None
        if not keys and not profile.allows_unregistered_receipt_key:
            raise self.fail(f"{k}.public_keys", "the production profile needs the registered "
                            "receipt keys of this jurisdiction's gateways", "config_missing_key")
        return ReceiptSettings(self.path(body, k, "key_file"), keys)

    def listen(self, doc: Mapping[str, Any], key: str, name: str = "listen",
               default: str | None = None) -> tuple[str, int]:
        address = parse_listen(self.text(doc, key, name, default))
        if address is None:
            raise self.fail(f"{key}.{name}", "must be host:port, e.g. 127.0.0.1:8401")
        return address

    def log(self, doc: Mapping[str, Any], key: str, profile: Profile) -> LogSettings:
        k = f"{key}.log"
        log = self.table(doc.get("log"), k, {"storage", "origin", "key_file", "vkey_file",
                                             "pseudonym_secret_file", "sequencer",
                                             "witnesses", "quorum"})
        storage = self.log_storage(log, k, "storage").target
        witnesses = log.get("witnesses", [])
        if not isinstance(witnesses, list):
            raise self.fail(f"{k}.witnesses", "must be an array of {url, vkey}")
        parsed = []
        seen: dict[object, int] = {}  # name or public key -> the witness listing it first
        for i, item in enumerate(witnesses):
            wk = f"{k}.witnesses[{i}]"
            w = self.table(item, wk, {"url", "vkey"})
            parsed.append(Witness(self.text(w, wk, "url"), self.text(w, wk, "vkey")))
            # a quorum counts witnesses: one name or one public key listed twice would
            # let one witness stand for two (tlog.cosignature.group_by_witness)
            for mark in _witness_marks(parsed[-1].vkey):
                if mark in seen:
                    raise self.fail(f"{wk}.vkey", f"names the witness of {k}.witnesses"
                                    f"[{seen[mark]}] again (its name or its key): a "
                                    "quorum counts witnesses, not entries",
                                    "witness_key_repeated")
                seen[mark] = i
        # witnesses on by default: listed witnesses all cosign unless a quorum says less
        quorum = self.integer(log, k, "quorum", len(parsed), low=0, high=64)
        if quorum > len(parsed):
            raise self.fail(f"{k}.quorum", "exceeds the number of witnesses")
        if quorum == 0 and not profile.allows_unwitnessed_log:
            raise self.fail(f"{k}.quorum", "the production profile needs at least one witness "
                            "cosignature (quorum >= 1)")
        if 2 * quorum <= len(parsed) and not profile.allows_unwitnessed_log:
            # disjoint sets of q witnesses could each be shown another history: the log
            # operator alone could fork the log (docs/threat-model.md L10)
            raise self.fail(f"{k}.quorum", f"the production profile needs more than half of "
                            f"the {len(parsed)} witnesses (quorum >= {len(parsed) // 2 + 1}): "
                            "with half or fewer, the log operator alone could show two "
                            "histories, each cosigned by a quorum")
        sequencer = self.sequencer_client(log, k)
        key_file = self.path(log, k, "key_file") if "key_file" in log else None
        vkey_file = self.path(log, k, "vkey_file") if "vkey_file" in log else None
        if key_file is None and vkey_file is None:
            raise self.fail(f"{k}.vkey_file", "name the log's verifier key (or, development "
                            "only, its key_file)", "config_missing_key")
        return LogSettings(
            storage=storage, origin=self.text(log, k, "origin"),
            key_file=key_file, vkey_file=vkey_file,
            pseudonym_secret_file=self.path(log, k, "pseudonym_secret_file"),
            sequencer=sequencer, witnesses=tuple(parsed), quorum=quorum)

    def sequencer_client(self, log: Mapping[str, Any], k: str) -> SequencerClient | None:
        if "sequencer" not in log:
            return None
        sk = f"{k}.sequencer"
        seq = self.table(log["sequencer"], sk, {"url", "credential_file",
                                                "release_credential_file",
                                                "custodian_credential_file"})
        url = self.text(seq, sk, "url")
        if urlsplit(url).scheme not in ("http", "https"):
            raise self.fail(f"{sk}.url", "must be an http(s) URL")

        def optional(name: str) -> Path | None:
            return self.path(seq, sk, name) if name in seq else None
        return SequencerClient(url, self.path(seq, sk, "credential_file"),
                               optional("release_credential_file"),
                               optional("custodian_credential_file"))

    def issuer(self, doc: Mapping[str, Any], key: str, code: str) -> IssuerSettings:
        k = f"{key}.issuer"
        iss = self.table(doc.get("issuer"), k, {"issuer", "audience", "public_keys",
                                                "private_key_file"})
        if not iss.get("public_keys"):
            raise self.fail(f"{k}.public_keys", "must be a non-empty array of key file paths")
        files = tuple(p if p.is_absolute() else self.base / p
                      for p in map(Path, self.texts(iss, k, "public_keys")))
        private = self.path(iss, k, "private_key_file") if "private_key_file" in iss else None
        return IssuerSettings(issuer=self.text(iss, k, "issuer"),
                              audience=self.text(iss, k, "audience", code),
                              public_key_files=files, private_key_file=private)

    def check_unique(self, parsed: Mapping[str, Jurisdiction]) -> None:
        seen: dict[tuple[str, int], str] = {}
        origins: dict[str, str] = {}
        for code, j in parsed.items():
            for name, where in (("listen", (j.listen_host, j.listen_port)),
                                ("admin_listen", (j.admin_host, j.admin_port))):
                if where in seen:
                    raise self.fail(f"jurisdictions.{code}.{name}",
                                    f"same address as jurisdictions.{seen[where]}")
                seen[where] = f"{code}.{name}"
            if j.log.origin in origins:
                raise self.fail(f"jurisdictions.{code}.log.origin",
                                f"same origin as jurisdictions.{origins[j.log.origin]}")
            origins[j.log.origin] = code
