"""The auditor's configuration file (TOML): which logs to audit and whom to trust.

An auditor does not read the custodian's deployment file: it states by itself
which keys it trusts.  One ``[logs.<jurisdiction>]`` table per log::

    [auditor]
    name = "Independent monitor"      # shown in the report
    k_min = 50                        # minimum subjects of an export (default 50)
    time_tolerance_s = 5              # allowed clock disorder between entries
    report_title = "bordergate audit" # optional

    [logs.us]
    location = "demo-data/us/log"     # a log directory or an http(s) base URL
    vkey = "us.bordergate.example/log+1a2b3c4d+AY..."   # the custodian's log key
    witnesses = ["witness-a+5e6f7a8b+BA..."]             # trusted witness keys
    quorum = 1                        # cosignatures required (default: all witnesses)
    bundle_store = "https://..."      # where bundles/sha256-*.tar live (default: location)
    bundle_dirs = ["policy"]          # local bundle directories (digest-checked)
    reviewers = [{ name = "alice", public_key = "alice+..." }]
    required_approvals = 2            # release approvals needed (default min(2, reviewers))
    approvers = ["carol", "dave"]     # custodian principals who may grant approvals
    k_min = 50                        # per-log override

Relative paths resolve against the file's directory.  When ``approvers`` is
empty, any principal of a ``custodian`` organisation holding the ``approver``
role counts.  Unknown keys are refused so that a typo never weakens an audit.

Parsing is pure (:func:`parse_auditor_config` takes bytes); this module must
never open a log or read the keys' owners' files.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bordergate.errors import ConfigError, VerificationError
from bordergate.subjects import JURISDICTION_PATTERN
from bordergate.tlog.cosignature import CosignatureVerifier
from bordergate.tlog.note import Ed25519Verifier

__all__ = ["AuditorConfig", "LogAudit", "load_auditor_config", "parse_auditor_config"]

_MAX_BYTES = 1 << 20


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
        k_min: minimum subjects of an export.
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
    k_min: int = 50


@dataclass(frozen=True)
class AuditorConfig:
    """The whole auditor configuration."""

    name: str
    title: str
    time_tolerance: float
    logs: Mapping[str, LogAudit]


def load_auditor_config(path: str | Path) -> AuditorConfig:
    """Read and check an auditor configuration file.

    Raises:
        ConfigError: ``config_unreadable``, or as :func:`parse_auditor_config`.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the auditor configuration: {exc.strerror}",
                          code="config_unreadable") from exc
    return parse_auditor_config(data, base_dir=path.resolve().parent, source=str(path))


def parse_auditor_config(data: bytes, *, base_dir: Path, source: str = "<auditor config>"
                         ) -> AuditorConfig:
    """Check auditor TOML; relative locations resolve against ``base_dir``.

    Raises:
        ConfigError: naming the key: ``config_syntax``, ``config_missing_key``,
            ``config_unknown_key`` or ``config_invalid`` (bad keys included).
    """
    if len(data) > _MAX_BYTES:
        raise ConfigError(f"{source}: larger than 1 MiB", code="config_too_large")
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{source}: not UTF-8 TOML: {exc}", code="config_syntax") from exc
    return _Reader(source, base_dir).config(doc)


class _Reader:
    def __init__(self, source: str, base: Path) -> None:
        self.source = source
        self.base = base

    def fail(self, key: str, why: str, code: str = "config_invalid") -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {why}", code=code)

    def table(self, value: object, key: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}", "unknown key", "config_unknown_key")
        return value

    def text(self, doc: Mapping[str, Any], key: str, name: str, default: str | None = None
             ) -> str:
        value = doc.get(name, default)
        if value is None:
            raise self.fail(f"{key}.{name}", "missing", "config_missing_key")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key}.{name}", "must be a non-empty string")
        return value.strip()

    def texts(self, doc: Mapping[str, Any], key: str, name: str) -> tuple[str, ...]:
        value = doc.get(name, [])
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            raise self.fail(f"{key}.{name}", "must be an array of strings")
        return tuple(value)

    def integer(self, doc: Mapping[str, Any], key: str, name: str, default: int, *,
                low: int, high: int) -> int:
        value = doc.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(f"{key}.{name}", f"must be an integer from {low} to {high}")
        return value

    def location(self, raw: str) -> str:
        if raw.startswith(("http://", "https://")):
            return raw.rstrip("/")
        if "://" in raw:
            raise ConfigError(f"{self.source}: {raw!r}: a directory or an http(s) URL",
                              code="config_invalid")
        path = Path(raw)
        return str(path if path.is_absolute() else self.base / path)

    def config(self, doc: dict[str, Any]) -> AuditorConfig:
        top = self.table(doc, "<top>", {"auditor", "logs"})
        auditor = self.table(top.get("auditor", {}), "auditor",
                             {"name", "k_min", "time_tolerance_s", "report_title"})
        k_min = self.integer(auditor, "auditor", "k_min", 50, low=1, high=1_000_000)
        tolerance = self.integer(auditor, "auditor", "time_tolerance_s", 5, low=0, high=86400)
        logs = top.get("logs")
        if not isinstance(logs, dict) or not logs:
            raise self.fail("logs", "at least one [logs.<jurisdiction>] table needed",
                            "config_missing_key")
        parsed = {code: self.log(code, body, k_min) for code, body in logs.items()}
        return AuditorConfig(
            name=self.text(auditor, "auditor", "name", "bordergate auditor"),
            title=self.text(auditor, "auditor", "report_title", "bordergate audit report"),
            time_tolerance=float(tolerance), logs=parsed)

    def log(self, code: str, body: object, k_min: int) -> LogAudit:
        key = f"logs.{code}"
        if JURISDICTION_PATTERN.fullmatch(code) is None:
            raise self.fail(key, "a jurisdiction code is 2-8 lowercase letters")
        doc = self.table(body, key, {"location", "vkey", "witnesses", "quorum", "bundle_store",
                                     "bundle_dirs", "reviewers", "required_approvals",
                                     "approvers", "k_min"})
        vkey = self.text(doc, key, "vkey")
        try:
            Ed25519Verifier.from_key_string(vkey)
        except VerificationError as exc:
            raise self.fail(f"{key}.vkey", f"not a log verifier key: {exc}") from None
        witnesses = self.texts(doc, key, "witnesses")
        for i, w in enumerate(witnesses):
            try:
                CosignatureVerifier.from_key_string(w)
            except VerificationError as exc:
                raise self.fail(f"{key}.witnesses[{i}]", f"not a witness key: {exc}") from None
        quorum = self.integer(doc, key, "quorum", len(witnesses), low=0, high=len(witnesses))
        location = self.location(self.text(doc, key, "location"))
        store = self.location(self.text(doc, key, "bundle_store", location))
        dirs = tuple(self.location(d) for d in self.texts(doc, key, "bundle_dirs"))
        reviewers = self.reviewers(doc.get("reviewers", []), f"{key}.reviewers")
        required = self.integer(doc, key, "required_approvals", min(2, len(reviewers)) or 1,
                                low=1, high=64)
        if reviewers and required > len(reviewers):
            raise self.fail(f"{key}.required_approvals", "exceeds the number of reviewers")
        return LogAudit(
            jurisdiction=code, location=location, vkey=vkey, witnesses=witnesses,
            quorum=quorum, bundle_store=store, bundle_dirs=dirs, reviewers=reviewers,
            required_approvals=required, approvers=self.texts(doc, key, "approvers"),
            k_min=self.integer(doc, key, "k_min", k_min, low=1, high=1_000_000))

    def reviewers(self, value: object, key: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, list):
            raise self.fail(key, "must be an array of {name, public_key}")
        out = []
        for i, item in enumerate(value):
            doc = self.table(item, f"{key}[{i}]", {"name", "public_key"})
            name = self.text(doc, f"{key}[{i}]", "name")
            public = self.text(doc, f"{key}[{i}]", "public_key")
            try:
                Ed25519Verifier.from_key_string(public)
            except VerificationError as exc:
                raise self.fail(f"{key}[{i}].public_key", f"not a reviewer key: {exc}") from None
            out.append((name, public))
        return tuple(out)
