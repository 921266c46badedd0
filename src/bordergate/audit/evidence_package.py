"""The evidence package of an audit report: what a finding rests on, each object once.

:func:`gather_evidence` collects, for every finding of a report that has an
inclusion proof, the files that let anyone re-check it offline (issue 14,
items 5 and 7), under ``evidence/`` of the report directory:

* ``evidence/entries/<jurisdiction>/<index>.json``: the entry decoded (JSON,
  not base64), its leaf hash, its RFC 9162 inclusion proof, and the paths of
  the checkpoint, policy bundle and roster version below; beside it
  ``<index>.entry``, the entry's raw bytes (the leaf is SHA-256(0x00 || those
  bytes)).  An entry suspected of holding personal data
  (``personal_data_in_entry``) is never copied: only its leaf hash is kept, and
  the proof is checked from that;
* ``evidence/checkpoints/sha256-<hex>.txt``: each checkpoint note (with its
  witness cosignatures) the proofs are against, and the one an audit resumed
  from, stored once by the SHA-256 of the note (the consistency proof between
  the two goes on the report's log, ``consistency_proof``);
* ``evidence/bundles/sha256-<hex>.tar``: each policy bundle an entry was
  replayed with, as its published deterministic archive, stored once by its
  bundle digest (the digest recomputed from the files must match);
* ``evidence/rosters/sha256-<hex>.json``: each roster version an entry names,
  stored once by digest.

However many findings there are, each bundle, checkpoint and roster version is
stored once (item 7: bounded evidence); the package's ``stats`` count the
references against the objects stored.  The manifest (``path -> sha256``) goes
into ``report.json``, which the auditor signs (:mod:`bordergate.audit.signed_report`),
so one changed byte of any evidence file fails ``audit verify-report``.

This module reads the bundle store (published bundles and rosters, and the
auditor's local bundle directories); it must never write anywhere (the report
writer does), and never store a bundle or roster whose digest it did not
recompute.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bordergate.audit.finding_context import decode_entry
from bordergate.audit.run import AuditRun, LogRun
from bordergate.errors import BordergateError, VerificationError
from bordergate.policy.bundle import archive_files, default_bundle
from bordergate.releases.publication import MAX_BUNDLE_BYTES, bundle_path, open_published_bundle
from bordergate.roster import MAX_ROSTER_BYTES, roster_path
from bordergate.roster.document import roster_digest
from bordergate.tlog import merkle
from bordergate.tlog.checkpoint import Checkpoint
from bordergate.tlog.client import LogClient, LogSource, open_source
from bordergate.tlog.note import Ed25519Verifier, note_signatures
from bordergate.tree_digest import digest_directory, read_tree

__all__ = ["ENTRY_FORMAT", "EVIDENCE_DIR", "EvidencePackage", "checkpoint_file",
           "file_digest", "gather_evidence"]

EVIDENCE_DIR = "evidence"
ENTRY_FORMAT = "bordergate/audit-evidence-entry/v1"


def file_digest(data: bytes) -> str:
    """``sha256:<hex>`` of a file's bytes (the manifest's and the checkpoints' names)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def checkpoint_file(note: str) -> str:
    """Where a checkpoint note is stored in the package (by the SHA-256 of the note)."""
    return f"{EVIDENCE_DIR}/checkpoints/sha256-{hashlib.sha256(note.encode()).hexdigest()}.txt"


@dataclass
class EvidencePackage:
    """The files of an evidence package (relative path -> bytes) and what they hold.

    Attributes:
        files: every evidence file.
        references: how many times findings referred to each stored object
            (checkpoint, bundle, roster), by path.
        missing: objects an entry names that could not be stored (digest -> reason).
    """

    files: dict[str, bytes] = field(default_factory=dict)
    references: dict[str, int] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def manifest(self) -> dict[str, str]:
        """``path -> sha256:<hex>`` of every file (goes into the signed report.json)."""
        return {path: file_digest(data) for path, data in sorted(self.files.items())}

    def stats(self) -> dict[str, Any]:
        """Objects stored and references to them, by kind (item 7: bounded)."""
        out: dict[str, Any] = {}
        for kind in ("entries", "checkpoints", "bundles", "rosters"):
            paths = [p for p in self.files if p.startswith(f"{EVIDENCE_DIR}/{kind}/")
                     and not p.endswith(".entry")]
            out[kind] = {"stored": len(paths),
                         "references": sum(self.references.get(p, 1) for p in paths)}
        return out

    def _refer(self, path: str, data: bytes) -> str:
        self.files.setdefault(path, data)
        self.references[path] = self.references.get(path, 0) + 1
        return path


def gather_evidence(run: AuditRun, report: dict[str, Any]) -> EvidencePackage:
    """Collect the package of ``report`` (built from ``run``) and point each finding at it.

    Adds to the report: ``evidence`` on each finding (the entry record's path, or
    the checkpoint's for a finding about a checkpoint), ``checkpoint_file`` and
    ``previous_checkpoint_file`` on each log, and the top-level ``evidence``
    section (manifest, stats, what could not be stored).

    Returns:
        The package (written by :func:`bordergate.audit.report.write_report`).
    """
    package = EvidencePackage()
    by_origin: dict[str, tuple[LogRun, _ObjectSource]] = {}
    for r, log in zip(run.logs, report["logs"], strict=True):
        log["checkpoint_file"] = package._refer(checkpoint_file(r.checkpoint),
                                                r.checkpoint.encode()) \
            if r.checkpoint and not r.unverified else None
        log["previous_checkpoint_file"] = package._refer(
            checkpoint_file(r.previous_checkpoint), r.previous_checkpoint.encode()) \
            if r.previous_checkpoint else None
        log["consistency_proof"] = _consistency(package, r) \
            if log["checkpoint_file"] and log["previous_checkpoint_file"] else []
        if log["origin"] is not None:
            by_origin[log["origin"]] = (r, _ObjectSource(r))
    for finding in report["findings"]:
        found = by_origin.get(finding["origin"])
        finding["evidence"] = None
        if found is None or finding.get("unverified"):
            continue
        r, objects = found
        log = next(x for x in report["logs"] if x["origin"] == finding["origin"])
        proof = finding.get("proof")
        if proof is not None and log["checkpoint_file"] is not None:
            finding["evidence"] = _entry_record(package, objects, r, proof,
                                                checkpoint=log["checkpoint_file"],
                                                origin=finding["origin"])
        elif finding["index"] is None and log["checkpoint_file"] is not None:
            finding["evidence"] = package._refer(log["checkpoint_file"],
                                                 package.files[log["checkpoint_file"]])
    report["evidence"] = {"directory": EVIDENCE_DIR, "files": package.manifest(),
                          "stats": package.stats(), "missing": dict(package.missing)}
    return package


def _consistency(package: EvidencePackage, r: LogRun) -> list[str]:
    """The consistency proof from the checkpoint a resumed audit started from to the
    audited one, verified (the log check proved it; kept so a reader can too)."""
    assert r.checkpoint is not None and r.previous_checkpoint is not None
    try:
        old, new = (Checkpoint.parse(note_signatures(n.encode())[0])
                    for n in (r.previous_checkpoint, r.checkpoint))
        if old.size in (0, new.size):
            return []
        client = LogClient(open_source(r.audit.location),
                           Ed25519Verifier.from_key_string(r.audit.vkey))
        proof = client.consistency_proof(old.size, new.size)
        merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
    except BordergateError as exc:
        package.missing[f"consistency:{r.audit.jurisdiction}"] = f"[{exc.code}] {exc}"
        return []
    return [base64.b64encode(h).decode() for h in proof]


def _entry_record(package: EvidencePackage, objects: _ObjectSource, r: LogRun,
                  proof: dict[str, Any], *, checkpoint: str, origin: str) -> str:
    index = int(proof["index"])
    record_path = f"{EVIDENCE_DIR}/entries/{r.audit.jurisdiction}/{index}.json"
    if record_path in package.files:
        package.references[record_path] += 1
        return record_path
    package._refer(checkpoint, package.files[checkpoint])
    raw = None if proof.get("entry") is None else base64.b64decode(proof["entry"])
    decoded = _decoded(raw)
    record: dict[str, Any] = {
        "format": ENTRY_FORMAT, "jurisdiction": r.audit.jurisdiction,
        "origin": origin, "index": index,
        "leaf_hash": proof["leaf_hash"], "tree_size": proof["tree_size"],
        "inclusion_proof": proof["hashes"], "checkpoint": checkpoint,
        "entry": decoded, "raw": None, "withheld": None, "bundle": None, "roster": None,
    }
    if raw is None:
        record["withheld"] = ("suspected personal data (personal_data_in_entry): the entry "
                              "is not copied; the proof is checked from its leaf hash")
    else:
        record["raw"] = package._refer(record_path.removesuffix(".json") + ".entry", raw)
    if isinstance(decoded, dict):
        record["bundle"] = _object(package, "bundle", decoded.get("bundle"), objects.bundle)
        record["roster"] = _object(package, "roster", decoded.get("roster"), objects.roster)
    package._refer(record_path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
    return record_path


def _decoded(raw: bytes | None) -> Any:
    return None if raw is None else decode_entry(raw)


def _object(package: EvidencePackage, kind: str, digest: object,
            fetch: Any) -> dict[str, Any] | None:
    """Store the bundle or roster version ``digest`` once; the entry's reference to it."""
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        return None
    hex_part = digest.removeprefix("sha256:")
    if len(hex_part) != 64 or any(c not in "0123456789abcdef" for c in hex_part):
        return {"digest": digest[:80], "file": None, "reason": "not a sha256 digest"}
    path = f"{EVIDENCE_DIR}/{kind}s/sha256-{hex_part}." + ("tar" if kind == "bundle" else "json")
    if path in package.files:
        package.references[path] += 1
        return {"digest": digest, "file": path}
    if digest in package.missing:
        return {"digest": digest, "file": None, "reason": package.missing[digest]}
    try:
        data = fetch(digest)
    except (BordergateError, OSError, binascii.Error) as exc:
        package.missing[digest] = f"{kind} not stored: {exc}"
        return {"digest": digest, "file": None, "reason": package.missing[digest]}
    return {"digest": digest, "file": package._refer(path, data)}


class _ObjectSource:
    """Bundles and roster versions of one log, fetched and digest-checked."""

    def __init__(self, r: LogRun) -> None:
        self.audit = r.audit
        self._source: LogSource | None = None

    def _store(self) -> LogSource:
        if self._source is None:
            self._source = open_source(self.audit.bundle_store)
        return self._source

    def bundle(self, digest: str) -> bytes:
        """The published archive of bundle ``digest`` (or one built from a local copy).

        Raises:
            VerificationError: nowhere holds a bundle with that digest.
        """
        data = self._store().fetch(bundle_path(digest), MAX_BUNDLE_BYTES)
        if data is not None:
            open_published_bundle(data, digest)
            return data
        for directory in self.audit.bundle_dirs:
            if digest_directory(directory).digest == digest:
                archive = archive_files(read_tree(Path(directory)))
                open_published_bundle(archive, digest)
                return archive
        shipped = default_bundle()
        if shipped.digest == digest:
            archive = archive_files(read_tree(Path(shipped.source)))
            open_published_bundle(archive, digest)
            return archive
        raise VerificationError(f"no published {bundle_path(digest)} and no local copy",
                                code="bundle_unavailable")

    def roster(self, digest: str) -> bytes:
        """The published document of roster version ``digest``.

        Raises:
            VerificationError: not published, or its bytes have another digest.
        """
        data = self._store().fetch(roster_path(digest), MAX_ROSTER_BYTES)
        if data is None:
            raise VerificationError(f"{roster_path(digest)} is not published",
                                    code="roster_unavailable")
        if roster_digest(data) != digest:
            raise VerificationError(f"{roster_path(digest)} has another digest",
                                    code="roster_digest_mismatch")
        return data
