"""Policy bundles: Cedar policies, their schema and the declared purposes.

A bundle is a directory::

    policies.cedar          one or more top-level ``*.cedar`` files, read in
    other.cedar             UTF-8 byte order of their names and parsed as one set
    schema.cedarschema      the Cedar schema, human format
                            (or ``schema.cedarschema.json``, JSON format; one of the two)
    purposes.toml           [purposes.<name>] description = "...",
                            reason_codes = { <code> = "<description>", ... },
                            actions = [...], roles = [...]  (see purpose_binding)
    exports.toml            k_min = <n>: the minimum subjects of every export,
                            read by the gateway and by the auditor alike
    approvals.toml          optional: [approvals] max_duration_s, max_subjects
                            (see approval_limits; without it, the legacy limits)

Loading validates everything, each failure a ``ConfigError`` naming the file:
no policy or schema file nests brackets deeper than ``MAX_NESTING``, nor a policy
file holds a statement of more than ``MAX_STATEMENT_TOKENS`` tokens (``policy_too_complex``,
checked before Cedar parses it: its parser recurses natively, and deeper text
kills the process instead of raising); every policy parses, validates against
the schema (cedarpy's validator), carries
a unique, non-empty ``@id("...")`` annotation, is not a template and names no
entity other than actions (decisions depend only on recorded attributes); the
schema parses; at least one purpose is declared, each with a description and
at least one reason code, and either every purpose or none declares its
``actions`` and ``roles``.  Declared bindings become two generated Cedar
forbids (``purpose_binding``) that join the policy set after the files'
policies (``policies_text`` holds them too).  Other files (a README) are allowed and digested.

The bundle digest is ``bordergate.tree_digest``'s canonical-file-list digest of the
directory (hidden entries and ``__pycache__`` skipped, symlinks rejected; see
that module and docs/policy-bundle.md for the exact scheme and a shell
pipeline that reproduces it).  The files are read once and the digest and the
parsed policies come from the same bytes, so the digest always names what is
evaluated.  ``bundle_archive`` packs the same files as a deterministic tar.

Pure apart from ``PolicyBundle.load``/``bundle_archive`` reading the directory:
this module must never evaluate requests, write files or reach the network, nor
hand Cedar text it has not measured (an auditor loads bundles from outside).
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cedarpy
from cedarpy import pst

from bordergate.errors import ConfigError, InvalidInput
from bordergate.policy.approval_limits import (
    APPROVALS_FILE,
    LEGACY_LIMITS,
    ApprovalLimits,
    parse_approval_limits,
)
from bordergate.policy.purpose_binding import PurposeBinding, binding_policies, parse_binding
from bordergate.tree_digest import digest_files, read_tree

__all__ = [
    "DEFAULT_BUNDLE_PATH",
    "EXPORTS_FILE",
    "POLICIES_SUFFIX",
    "PURPOSES_FILE",
    "SCHEMA_FILE",
    "SCHEMA_JSON_FILE",
    "PolicyBundle",
    "Purpose",
    "archive_files",
    "bundle_archive",
    "default_bundle",
]

DEFAULT_BUNDLE_PATH = Path(__file__).parent / "default_bundle"
POLICIES_SUFFIX = ".cedar"
SCHEMA_FILE = "schema.cedarschema"
SCHEMA_JSON_FILE = "schema.cedarschema.json"
PURPOSES_FILE = "purposes.toml"
EXPORTS_FILE = "exports.toml"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class Purpose:
    """A declared purpose of access and its reason codes.

    Attributes:
        name: e.g. ``customer_support``.
        description: what the purpose is, for people.
        reason_codes: reason code -> description; an approval request names one.
        binding: the actions it permits and the roles that may invoke it
            (None only in bundles that predate purpose binding).
    """

    name: str
    description: str
    reason_codes: Mapping[str, str]
    binding: PurposeBinding | None = None


MAX_NESTING = 64
"""The deepest bracket nesting (``( [ {``, and ``<`` in a human-format schema) a policy
or schema file may have.  Cedar's parser recurses natively: about 600 nested
parentheses overflow its stack and kill the process (a segmentation fault, not an
error), so text from outside (a published bundle) is measured before it is parsed."""

MAX_STATEMENT_TOKENS = 4096
"""The most tokens one policy statement may hold, for the same reason: a chain of
about 15,000 ``&&`` (or ``+``, ``.``, nested ``if``) kills Cedar's parser too; real
policies are a few dozen tokens."""

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|//[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9]+|\S')


def _check_shape(where: str, text: str, *, angle: bool, statements: bool = True) -> None:
    """Refuse text nesting deeper than :data:`MAX_NESTING` or (with ``statements``: a
    policy file) with a statement longer than :data:`MAX_STATEMENT_TOKENS` tokens,
    before Cedar parses it (strings and ``//`` comments are skipped; ``angle``:
    ``<``/``>`` are brackets too, as in a human-format schema).

    Raises:
        ConfigError: ``policy_too_complex``.
    """
    opening, closing = ("([{<", ")]}>") if angle else ("([{", ")]}")
    depth = count = 0
    for match in _TOKEN.finditer(text):
        piece = match.group()
        if piece.startswith("//"):
            continue
        count += 1
        if piece in opening:
            depth += 1
            if depth > MAX_NESTING:
                raise ConfigError(f"{where}: brackets nested deeper than {MAX_NESTING}",
                                  code="policy_too_complex")
        elif piece in closing:
            depth = max(0, depth - 1)
        elif piece == ";" and depth == 0:
            count = 0
        if statements and count > MAX_STATEMENT_TOKENS:
            raise ConfigError(f"{where}: a statement of more than {MAX_STATEMENT_TOKENS} "
                              "tokens", code="policy_too_complex")


def _decode(source: str, name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}/{name}: not UTF-8", code="policy_bundle_invalid") from exc


def _parse_purposes(source: str, data: bytes) -> dict[str, Purpose]:
    where = f"{source}/{PURPOSES_FILE}"
    try:
        doc = tomllib.loads(_decode(source, PURPOSES_FILE, data))
    except (tomllib.TOMLDecodeError, RecursionError) as exc:  # nested arrays: RecursionError
        raise ConfigError(f"{where}: {exc}", code="purposes_invalid") from exc
    table = doc.get("purposes")
    if set(doc) != {"purposes"} or not isinstance(table, dict) or not table:
        raise ConfigError(
            f"{where}: needs a non-empty [purposes.<name>] table", code="purposes_invalid"
        )
    out: dict[str, Purpose] = {}
    for name, entry in table.items():
        if not _NAME.fullmatch(name) or not isinstance(entry, dict):
            raise ConfigError(f"{where}: bad purpose {name!r}", code="purposes_invalid")
        description = entry.get("description")
        codes = entry.get("reason_codes")
        try:
            binding = parse_binding(entry)
        except ValueError as exc:
            raise ConfigError(f"{where}: purpose {name!r}: {exc}", code="purposes_invalid") from exc
        if (
            set(entry) - {"actions", "roles"} != {"description", "reason_codes"}
            or not isinstance(description, str)
            or not description.strip()
            or not isinstance(codes, dict)
            or not codes
            or not all(
                _NAME.fullmatch(c) and isinstance(d, str) and d.strip() for c, d in codes.items()
            )
        ):
            raise ConfigError(
                f"{where}: purpose {name!r} needs exactly a non-empty description and "
                "a non-empty reason_codes table of code = description "
                "(and, optionally, actions and roles)",
                code="purposes_invalid",
            )
        out[name] = Purpose(name, description, MappingProxyType(dict(codes)), binding)
    if len({p.binding is None for p in out.values()}) > 1:
        raise ConfigError(
            f"{where}: either every purpose declares actions and roles or none does",
            code="purposes_invalid",
        )
    return out


def _parse_exports(source: str, data: bytes | None) -> int:
    """``k_min`` of ``exports.toml``: the minimum subjects of every export."""
    where = f"{source}/{EXPORTS_FILE}"
    if data is None:
        raise ConfigError(f"{where} is missing (it sets k_min, the minimum subjects of "
                          "every export)", code="exports_invalid")
    try:
        doc = tomllib.loads(_decode(source, EXPORTS_FILE, data))
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(f"{where}: {exc}", code="exports_invalid") from exc
    k_min = doc.get("k_min")
    if set(doc) != {"k_min"} or isinstance(k_min, bool) or not isinstance(k_min, int) \
            or not 1 <= k_min <= 1_000_000:
        raise ConfigError(f"{where}: needs exactly k_min = <an integer from 1 to 1000000>",
                          code="exports_invalid")
    return k_min


def _reads_attribute(node: object, attribute: str) -> bool:
    """True if a Cedar JSON (EST) expression reads or tests ``attribute`` anywhere."""
    if isinstance(node, dict):
        if node.get("attr") == attribute:
            return True
        return any(_reads_attribute(value, attribute) for value in node.values())
    if isinstance(node, list):
        return any(_reads_attribute(value, attribute) for value in node)
    return False


def _parse_schema(source: str, files: Mapping[str, bytes]) -> tuple[str, str, cedarpy.Schema]:
    present = [name for name in (SCHEMA_FILE, SCHEMA_JSON_FILE) if name in files]
    if len(present) != 1:
        raise ConfigError(
            f"{source}: needs exactly one of {SCHEMA_FILE} or {SCHEMA_JSON_FILE}",
            code="policy_schema_invalid",
        )
    name = present[0]
    text = _decode(source, name, files[name])
    # a schema has no operator chains (only nesting): no statement budget
    _check_shape(f"{source}/{name}", text, angle=name == SCHEMA_FILE, statements=False)
    try:
        schema = (
            cedarpy.Schema.from_str(text)
            if name == SCHEMA_FILE
            else cedarpy.Schema.from_json_str(text)
        )
    except ValueError as exc:
        raise ConfigError(f"{source}/{name}: {exc}", code="policy_schema_invalid") from exc
    return name, text, schema


def _check_policy_file(source: str, name: str, text: str, schema: cedarpy.Schema) -> list[str]:
    """Parse and validate one policy file; return its @ids in order."""
    where = f"{source}/{name}"
    _check_shape(where, text, angle=False)
    try:
        est = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}", code="policy_parse_error") from exc
    if est.get("templates") or est.get("templateLinks"):
        raise ConfigError(f"{where}: templates are not allowed", code="policy_invalid")
    ids: list[str] = []
    for number, policy in enumerate(est.get("staticPolicies", {}).values(), start=1):
        ident = policy.get("annotations", {}).get("id")
        if not isinstance(ident, str) or not ident:
            raise ConfigError(
                f'{where}: policy #{number} has no @id("...")', code="policy_missing_id"
            )
        ids.append(ident)
    if not ids:
        raise ConfigError(f"{where}: holds no policy", code="policy_invalid")
    try:
        named = pst.entity_uids(cedarpy.policies_to_pst(text))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}", code="policy_parse_error") from exc
    foreign = sorted(str(u) for u in named if u.type.namespace or u.type.basename != "Action")
    if foreign:
        # Entity uids are synthetic per evaluation; decisions must depend only on
        # the recorded attributes, or replay would differ (promise 4).
        raise ConfigError(
            f"{where}: policies may name only actions, not {', '.join(foreign)}",
            code="policy_names_entity",
        )
    result = cedarpy.validate_policies(text, schema)
    if not result.validation_passed:
        problems = "; ".join(str(e) for e in result.errors) or "validation failed"
        raise ConfigError(
            f"{where}: does not validate against the schema: {problems}", code="policy_invalid"
        )
    return ids


class PolicyBundle:
    """A loaded, validated policy bundle with its parsed Cedar handles.

    Attributes:
        source: where it came from (for messages).
        digest: ``sha256:<hex>`` canonical-file-list digest.
        files: ``(path, sha256 hex)`` of every digested file.
        policies_text: all policy files concatenated in canonical order.
        schema_text: the schema file's text.
        purposes: declared purposes by name.
        k_min: the minimum subjects of every export (``exports.toml``).
        k_min_declared: ``k_min`` is the bundle's own (False only for a bundle read
            with ``legacy_k_min``, which has no ``exports.toml``).
        approval_limits: how far one approval may reach (``approvals.toml``).
        policy_ids: every policy's ``@id``, in order.
        policy_set: the parsed ``cedarpy.PolicySet`` handle.
        schema: the parsed ``cedarpy.Schema`` handle.
        annotations: Cedar's positional policy id (``policy0``...) -> ``@id``.
        reads_field_name: some policy reads an attribute called ``name``; if
            none does, fields of one collection and class get one evaluation.
    """

    def __init__(self, files: Iterable[tuple[str, bytes]], *, source: str = "<memory>",
                 legacy_k_min: int | None = None) -> None:
        """Validate a bundle given as in-memory files (see ``load`` for a directory).

        Args:
            files: ``(relative POSIX path, content)`` pairs.
            source: a name for messages, e.g. the directory.
            legacy_k_min: the reading rules of bundles released before ``exports.toml``
                existed (entry version 1, for the auditor only): a bundle without
                that file takes this ``k_min`` (the deployment's, as it was) instead
                of being refused.  ``k_min_declared`` then says False.

        Raises:
            ConfigError: a file is missing or wrong; the message names it.
        """
        contents = dict(files)
        listed = digest_files(contents.items())
        self.source = source
        self.digest = listed.digest
        self.files = listed.files
        _, self.schema_text, self.schema = _parse_schema(source, contents)
        if PURPOSES_FILE not in contents:
            raise ConfigError(f"{source}: {PURPOSES_FILE} is missing", code="purposes_invalid")
        self.purposes: Mapping[str, Purpose] = MappingProxyType(
            _parse_purposes(source, contents[PURPOSES_FILE])
        )
        self.k_min_declared = EXPORTS_FILE in contents or legacy_k_min is None
        self.k_min: int = legacy_k_min if legacy_k_min is not None and \
            not self.k_min_declared else _parse_exports(source, contents.get(EXPORTS_FILE))
        self.approval_limits: ApprovalLimits = (
            parse_approval_limits(source, contents[APPROVALS_FILE])
            if APPROVALS_FILE in contents else LEGACY_LIMITS)
        policy_files = sorted(
            (p for p in contents if "/" not in p and p.endswith(POLICIES_SUFFIX)),
            key=lambda p: p.encode("utf-8"),
        )
        if not policy_files:
            raise ConfigError(f"{source}: no *{POLICIES_SUFFIX} file", code="policy_invalid")
        texts: list[str] = []
        ids: list[str] = []
        for name in policy_files:
            text = _decode(source, name, contents[name])
            for ident in _check_policy_file(source, name, text, self.schema):
                if ident in ids:
                    raise ConfigError(
                        f"{source}/{name}: duplicate @id {ident!r}", code="policy_duplicate_id"
                    )
                ids.append(ident)
            texts.append(text)
        generated = binding_policies(
            {n: p.binding for n, p in self.purposes.items() if p.binding is not None}
        )
        if generated:
            for ident in _check_policy_file(source, PURPOSES_FILE, generated, self.schema):
                if ident in ids:
                    raise ConfigError(
                        f"{source}: @id {ident!r} is reserved for purpose binding",
                        code="policy_duplicate_id",
                    )
                ids.append(ident)
            texts.append(generated)
        self.policies_text = "\n".join(texts)
        self.policy_ids = tuple(ids)
        self.policy_set = cedarpy.PolicySet.from_str(self.policies_text)
        est: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(self.policies_text))
        self.annotations: Mapping[str, str] = MappingProxyType(
            {pid: p["annotations"]["id"] for pid, p in est["staticPolicies"].items()}
        )
        self.reads_field_name = _reads_attribute(est, "name")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PolicyBundle:
        """Read and validate the bundle directory at ``path``.

        Args:
            path: the bundle directory.

        Returns:
            The validated bundle.

        Raises:
            ConfigError: the directory is unreadable, holds a symlink, or a
                file is missing or wrong; the message names the file.
        """
        return cls(read_tree(path), source=str(path))

    def purpose(self, name: str) -> Purpose:
        """Return the declared purpose ``name``.

        Raises:
            InvalidInput: the purpose is not declared (code ``unknown_purpose``).
        """
        found = self.purposes.get(name)
        if found is None:
            raise InvalidInput(f"unknown purpose {name!r}", code="unknown_purpose")
        return found

    def check_reason(self, purpose: str, reason_code: str) -> None:
        """Check that ``reason_code`` is declared for ``purpose``.

        Raises:
            InvalidInput: unknown purpose (``unknown_purpose``) or reason code
                (``unknown_reason_code``).
        """
        if reason_code not in self.purpose(purpose).reason_codes:
            raise InvalidInput(
                f"unknown reason code {reason_code!r} for purpose {purpose!r}",
                code="unknown_reason_code",
            )

    def __repr__(self) -> str:
        return f"PolicyBundle(source={self.source!r}, digest={self.digest!r})"


@cache
def default_bundle() -> PolicyBundle:
    """Return the bundle shipped in the package (the trusted-partner arrangement).

    Raises:
        ConfigError: the installed bundle is damaged.
    """
    return PolicyBundle.load(DEFAULT_BUNDLE_PATH)


def archive_files(files: Iterable[tuple[str, bytes]]) -> bytes:
    """Pack files as a deterministic, uncompressed POSIX (pax) tar.

    Entries are regular files only, in canonical (UTF-8 byte) order of their
    paths, with mode 0644, mtime 0, uid/gid 0 and empty user and group names,
    so equal contents give equal bytes.

    Args:
        files: ``(relative POSIX path, content)`` pairs.

    Returns:
        The tar bytes.

    Raises:
        ConfigError: a path is not clean or repeated (see ``digest_files``).
    """
    items = dict(files)
    ordered = digest_files(items.items()).files
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, _ in ordered:
            data = items[path]
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def bundle_archive(path: str | os.PathLike[str]) -> bytes:
    """Pack the bundle directory's digested files as a deterministic tar.

    Args:
        path: the bundle directory.

    Returns:
        The tar bytes; its files have the bundle digest.

    Raises:
        ConfigError: the directory cannot be read (see ``read_tree``).
    """
    return archive_files(read_tree(path))
