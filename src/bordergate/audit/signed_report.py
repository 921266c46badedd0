"""The auditor's signature on a report, and checking a report directory offline.

A report directory holds ``report.json``, ``report.html``, the evidence
package under ``evidence/`` (:mod:`bordergate.audit.evidence_package`) and
``report.sig``: a C2SP signed note (:mod:`bordergate.tlog.note`) by the
auditor's Ed25519 key (``bordergate audit keygen``) whose text is::

    bordergate/audit-report/v1
    sha256:<hex> report.json
    sha256:<hex> report.html

So the signature covers ``report.json``, and ``report.json`` carries the
manifest (``path -> sha256``) of every evidence file: one changed byte anywhere
breaks a digest the auditor signed.

:func:`verify_report` checks a directory's files (given as bytes: it does no
I/O, opens no socket and needs no gateway or log):

1. ``report.sig`` verifies with a key the caller trusts, and names the digests of
   ``report.json`` and ``report.html``;
2. every file of the evidence manifest is present with its digest, and no other
   file lies under ``evidence/``;
3. each log's audited checkpoint is signed by the log key the report states (or
   one the caller pins), and the cosignatures the report claims verify with the
   witness keys it states (each one the caller pins, when it pins any: keys a
   report names itself prove only that its author made them); a log the report
   calls verified has that checkpoint; an audit that resumed from saved state
   also has its previous checkpoint, and a consistency proof that the audited
   one extends it (of the same size: the same root);
4. every finding that names an entry has an entry record of its own log's
   audited checkpoint whose leaf hash is SHA-256(0x00 || raw entry), whose decoded
   form is that entry (a record without the raw entry, withheld, states no
   decoded form), whose inclusion proof leads to the root of that checkpoint, and
   whose policy bundle and roster version hash to the digests the entry names; a
   finding about a checkpoint names its own log's audited checkpoint;
5. ``report.html`` is the rendering of ``report.json`` (:mod:`bordergate.audit.report_html`,
   this version's): the page people read cannot say other than what was checked.

Who could lie here: the auditor (the signature says who; the proofs let anyone
re-check every finding against checkpoints the log signed and witnesses
cosigned), or whoever holds the files after it (any change fails a digest).
What it cannot show: findings the auditor left out; another auditor's run over
the same checkpoint would.  This module must never do I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bordergate.audit.evidence_package import ENTRY_FORMAT, EVIDENCE_DIR, file_digest
from bordergate.audit.finding_context import decode_entry
from bordergate.errors import VerificationError
from bordergate.releases.publication import open_published_bundle
from bordergate.roster.document import roster_digest
from bordergate.tlog import merkle
from bordergate.tlog.checkpoint import SignedCheckpoint, open_checkpoint
from bordergate.tlog.cosignature import CosignatureVerifier
from bordergate.tlog.note import Ed25519Verifier, NoteSigner, Verifier, open_note, sign_note

__all__ = ["REPORT_FILES", "SIGNATURE_FILE", "SIGNED_FORMAT", "ReportProblem",
           "ReportVerification", "sign_report", "verify_report"]

SIGNED_FORMAT = "bordergate/audit-report/v1"
SIGNATURE_FILE = "report.sig"
REPORT_FILES = ("report.json", "report.html")
_LINE = re.compile(r"^(sha256:[0-9a-f]{64}) (report\.json|report\.html)$")


def sign_report(files: Mapping[str, bytes], signer: NoteSigner) -> bytes:
    """The signed note of a report (``report.sig``) over its JSON and HTML.

    Args:
        files: at least ``report.json`` and ``report.html``.
        signer: the auditor's key.
    """
    lines = [SIGNED_FORMAT] + [f"{file_digest(files[name])} {name}" for name in REPORT_FILES]
    return sign_note("\n".join(lines) + "\n", [signer])


@dataclass(frozen=True)
class ReportProblem:
    """One reason a report directory does not verify: the file, a stable code, why."""

    file: str
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: [{self.code}] {self.reason}"


@dataclass
class ReportVerification:
    """What :func:`verify_report` found.

    Attributes:
        problems: every reason the directory does not verify (empty: it verifies).
        signed_by: the auditor key names whose signature verified.
        checked: counts of what was checked (files, checkpoints, entries, bundles...).
        notes: facts for people (entries withheld, findings without an entry).
        verified_objects: bundle and roster files already checked (each once).
    """

    problems: list[ReportProblem] = field(default_factory=list)
    signed_by: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    verified_objects: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, file: str, code: str, reason: str) -> None:
        self.problems.append(ReportProblem(file, code, reason))

    def count(self, what: str) -> None:
        self.checked[what] = self.checked.get(what, 0) + 1


def verify_report(files: Mapping[str, bytes], auditor: Sequence[Verifier], *,
                  log_keys: Sequence[str] = (),
                  witness_keys: Sequence[str] = ()) -> ReportVerification:
    """Check a report directory (see the module docstring).

    Args:
        files: every file of the directory, by path relative to it (``/``-separated).
        auditor: the auditor keys the caller trusts.
        witness_keys: witness keys the caller pins; when given, every witness key a
            log states (so every cosignature the report claims) must be one of them,
            else the "witnessed" claims rest on keys the report names itself.
        log_keys: log verifier keys the caller pins; when given, each log's stated
            key must be one of them.

    Returns:
        The verification; ``ok`` when nothing failed.
    """
    out = ReportVerification()
    report = _signed_report(files, auditor, out)
    if report is None:
        return out
    try:
        _check_manifest(files, report, out)
        checkpoints = _check_logs(files, report, out, log_keys, witness_keys)
        _check_findings(files, report, checkpoints, out)
        if not out.problems:
            _check_page(files, report, out)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        # signed, but not the shape this verifier knows: never a pass
        out.fail("report.json", "report_malformed", f"unexpected structure: {exc!r}"[:300])
    return out


def _check_page(files: Mapping[str, bytes], report: dict[str, Any],
                out: ReportVerification) -> None:
    """``report.html`` is this version's rendering of ``report.json``: an auditor that
    signed a page saying other than its checked document (a finding left out of the
    page, a verdict changed) is caught here."""
    from bordergate.audit.report_html import render_report_html

    if files["report.html"] != render_report_html(report).encode("utf-8"):
        out.fail("report.html", "report_html_mismatch",
                 "report.html is not the rendering of report.json (a report made by "
                 "another version of bordergate: verify it with that version)")
    else:
        out.count("report page")


def _signed_report(files: Mapping[str, bytes], auditor: Sequence[Verifier],
                   out: ReportVerification) -> dict[str, Any] | None:
    """The report document, if ``report.sig`` verifies and names the files as they are."""
    named = _signed_digests(files, auditor, out)
    if named is None:
        return None
    for name in REPORT_FILES:
        data = files.get(name)
        if data is None:
            out.fail(name, "report_file_missing", "named by report.sig but absent")
        elif file_digest(data) != named[name]:
            out.fail(name, "report_digest_mismatch",
                     f"its SHA-256 is not the {named[name]} the auditor signed")
        else:
            out.count("report files")
    if out.problems:
        return None
    try:
        report = json.loads(files["report.json"])
    except (ValueError, RecursionError) as exc:
        out.fail("report.json", "report_malformed", f"not JSON: {exc}")
        return None
    if not isinstance(report, dict) or report.get("format") != SIGNED_FORMAT or \
            not isinstance(report.get("logs"), list) or \
            not isinstance(report.get("findings"), list) or \
            not isinstance(report.get("evidence"), dict) or \
            not isinstance(report["evidence"].get("files"), dict):
        out.fail("report.json", "report_malformed", f"not a {SIGNED_FORMAT} document with "
                 "logs, findings and an evidence manifest")
        return None
    return report


def _signed_digests(files: Mapping[str, bytes], auditor: Sequence[Verifier],
                    out: ReportVerification) -> dict[str, str] | None:
    """``file -> sha256:<hex>`` as the auditor's verified note names them."""
    sig = files.get(SIGNATURE_FILE)
    if sig is None:
        out.fail(SIGNATURE_FILE, "report_unsigned", "the directory holds no report.sig")
        return None
    try:
        opened = open_note(sig, auditor)
    except VerificationError as exc:
        out.fail(SIGNATURE_FILE, "report_signature_invalid", f"[{exc.code}] {exc}")
        return None
    out.signed_by = [s.name for s in opened.verified]
    lines = opened.text.rstrip("\n").split("\n")
    named: dict[str, str] = {}
    for line in lines[1:]:
        match = _LINE.match(line)
        if match is not None:
            named[match.group(2)] = match.group(1)
    if lines[0] != SIGNED_FORMAT or set(named) != set(REPORT_FILES):
        out.fail(SIGNATURE_FILE, "report_note_malformed",
                 f"the signed note is not a {SIGNED_FORMAT} note naming "
                 f"{' and '.join(REPORT_FILES)}")
        return None
    return named


def _manifest(report: dict[str, Any]) -> dict[str, str]:
    """The evidence manifest of a report (``path -> sha256:<hex>``; empty if none)."""
    found = (report.get("evidence") or {}).get("files") or {}
    return found if isinstance(found, dict) else {}


def _check_manifest(files: Mapping[str, bytes], report: dict[str, Any],
                    out: ReportVerification) -> None:
    manifest = _manifest(report)
    for path, digest in sorted(manifest.items()):
        data = files.get(path)
        if data is None:
            out.fail(path, "evidence_missing", "listed in report.json but absent")
        elif file_digest(data) != digest:
            out.fail(path, "evidence_digest_mismatch",
                     f"its SHA-256 is not the {digest} report.json lists")
        else:
            out.count("evidence files")
    for path in sorted(files):
        if path.startswith(EVIDENCE_DIR + "/") and path not in manifest:
            out.fail(path, "evidence_unlisted", "not in the signed manifest of report.json")


def _check_logs(files: Mapping[str, bytes], report: dict[str, Any], out: ReportVerification,
                log_keys: Sequence[str], witness_keys: Sequence[str] = ()
                ) -> dict[str, SignedCheckpoint]:
    """Open each log's audited and previous checkpoint; by path."""
    opened: dict[str, SignedCheckpoint] = {}
    for log in report.get("logs", []):
        vkey = log.get("vkey")
        stated = log.get("witness_keys") or []
        if witness_keys and any(w not in witness_keys for w in stated):
            out.fail("report.json", "witness_key_not_pinned",
                     f"the report states witness keys for {log.get('origin')} that are not "
                     "a --witness-key given: its cosignatures prove nothing to this reader")
        if log.get("verified") and log.get("checkpoint_file") is None:
            out.fail("report.json", "checkpoint_missing",
                     f"the report says {log.get('origin')} verified at size {log.get('size')} "
                     "but holds no checkpoint it was verified against")
        for which in ("checkpoint_file", "previous_checkpoint_file"):
            path = log.get(which)
            if path is None or path not in files or file_digest(files[path]) != \
                    _manifest(report).get(path):
                continue  # already reported by the manifest check (or none)
            if log_keys and vkey not in log_keys:
                out.fail(path, "log_key_not_pinned",
                         f"the report's key for {log.get('origin')} is not a --log-key given")
                continue
            try:
                signed = open_checkpoint(files[path], Ed25519Verifier.from_key_string(vkey),
                                         cosigners=[CosignatureVerifier.from_key_string(w)
                                                    for w in log.get("witness_keys", [])])
            except (VerificationError, TypeError) as exc:
                out.fail(path, "checkpoint_invalid", f"does not verify with the log key "
                         f"the report states: {exc}")
                continue
            opened[path] = signed
            out.count("checkpoints")
            if which == "checkpoint_file":
                _check_claims(path, log, signed, out)
        _check_resumption(log, opened, out)
    return opened


def _check_resumption(log: dict[str, Any], opened: dict[str, SignedCheckpoint],
                      out: ReportVerification) -> None:
    """A resumed audit's previous checkpoint is proven extended by the audited one."""
    old = opened.get(str(log.get("previous_checkpoint_file")))
    new = opened.get(str(log.get("checkpoint_file")))
    if old is None or new is None or old.checkpoint.size == 0:
        return
    if old.checkpoint.size == new.checkpoint.size:
        if old.checkpoint.root != new.checkpoint.root:  # two trees of one size: a fork
            out.fail(log["previous_checkpoint_file"], "consistency_proof_invalid",
                     f"the audited checkpoint and the one this audit resumed from are both "
                     f"of size {new.checkpoint.size} with other roots (a split view)")
        return
    try:
        proof = [base64.b64decode(h, validate=True) for h in log.get("consistency_proof", [])]
        merkle.verify_consistency(old.checkpoint.size, new.checkpoint.size,
                                  old.checkpoint.root, new.checkpoint.root, proof)
        out.count("consistency proofs")
    except (VerificationError, binascii.Error, ValueError) as exc:
        out.fail(log["previous_checkpoint_file"], "consistency_proof_invalid",
                 f"the audited checkpoint is not proven to extend the one this audit "
                 f"resumed from: {exc}")


def _check_claims(path: str, log: dict[str, Any], signed: SignedCheckpoint,
                  out: ReportVerification) -> None:
    """The size, root and witness cosignatures the report states are the checkpoint's."""
    cp = signed.checkpoint
    if log.get("size") != cp.size or log.get("root") != cp.root.hex():
        out.fail(path, "checkpoint_claim_mismatch",
                 "the report states another size or root for this checkpoint")
    have = {(c.name, f"{c.key_id:08x}", c.timestamp) for c in signed.cosignatures}
    for c in (log.get("witnesses") or {}).get("cosigned_by", []):
        if (c.get("witness"), c.get("key_id"), c.get("timestamp")) not in have:
            out.fail(path, "cosignature_claim_mismatch",
                     f"the report says {c.get('witness')} cosigned it; no such valid "
                     "cosignature is in the note")


def _check_findings(files: Mapping[str, bytes], report: dict[str, Any],
                    checkpoints: dict[str, SignedCheckpoint], out: ReportVerification) -> None:
    manifest = _manifest(report)
    done: set[str] = set()
    for finding in report.get("findings", []):
        ref = finding.get("evidence")
        if finding.get("unverified"):
            out.notes.append(f"{finding['kind']} at {finding['jurisdiction']} "
                             f"{finding.get('index')}: from an unverified log, no proof")
            continue
        if ref is None:
            if finding.get("index") is not None:
                out.notes.append(f"{finding['kind']} at {finding['jurisdiction']} entry "
                                 f"{finding['index']}: no entry in the package (proof "
                                 "limit reached); check it with `log prove`")
            continue
        if ref not in manifest or file_digest(files.get(ref, b"")) != manifest[ref]:
            if ref not in manifest:
                out.fail(ref, "evidence_missing", "a finding names it; the manifest does not")
            continue
        if ref.startswith(f"{EVIDENCE_DIR}/checkpoints/"):
            own = next((x.get("checkpoint_file") for x in report["logs"]
                        if x.get("origin") == finding.get("origin")), None)
            if ref != own:
                out.fail(ref, "evidence_malformed", f"not the audited checkpoint of "
                         f"{finding.get('jurisdiction')}, which the finding is about")
            elif ref not in checkpoints:
                out.fail(ref, "checkpoint_invalid", "the finding's checkpoint did not verify")
            continue
        if ref not in done:
            done.add(ref)
            _check_entry(files, ref, finding, checkpoints, out, report_logs=report["logs"])


def _check_entry(files: Mapping[str, bytes], path: str, finding: dict[str, Any],
                 checkpoints: dict[str, SignedCheckpoint], out: ReportVerification, *,
                 report_logs: list[dict[str, Any]]) -> None:
    try:
        record = json.loads(files[path])
        if record.get("format") != ENTRY_FORMAT or record.get("index") != finding["index"]:
            raise ValueError(f"not the {ENTRY_FORMAT} record of entry {finding['index']}")
        leaf = base64.b64decode(record["leaf_hash"], validate=True)
        hashes = [base64.b64decode(h, validate=True) for h in record["inclusion_proof"]]
        size, index = int(record["tree_size"]), int(record["index"])
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        out.fail(path, "evidence_malformed", str(exc)[:300])
        return
    log = next((x for x in report_logs if x.get("origin") == finding.get("origin")), None)
    if record.get("jurisdiction") != finding.get("jurisdiction") or log is None or \
            record.get("checkpoint") != log.get("checkpoint_file"):
        out.fail(path, "evidence_malformed", f"not the record of an entry of "
                 f"{finding.get('jurisdiction')}'s audited checkpoint, which the finding is about")
        return
    signed = checkpoints.get(record.get("checkpoint"))
    if signed is None:
        out.fail(path, "checkpoint_invalid", "its checkpoint is not a verified checkpoint "
                 "of the report")
        return
    raw_path = record.get("raw")
    if raw_path is None and record.get("entry") is not None:
        out.fail(path, "entry_decoding_mismatch", "the record states a decoded entry but "
                 "holds no raw entry it was decoded from")
        return
    if raw_path is not None:
        raw = files.get(raw_path, b"")
        if merkle.leaf_hash(raw) != leaf:
            out.fail(raw_path, "entry_leaf_mismatch", "SHA-256(0x00 || entry) is not the "
                     "leaf hash of its record")
            return
        if _json_or_none(raw) != record.get("entry"):
            out.fail(path, "entry_decoding_mismatch", "the decoded entry is not the raw "
                     "entry's JSON")
        out.count("entries")
    else:
        out.notes.append(f"{path}: {record.get('withheld') or 'entry not copied'}")
    try:
        if size != signed.checkpoint.size:
            raise VerificationError("the proof is for another tree size",
                                    code="inclusion_proof_invalid")
        merkle.verify_inclusion(leaf, index, size, hashes, signed.checkpoint.root)
        out.count("inclusion proofs")
    except VerificationError as exc:
        out.fail(path, "inclusion_proof_invalid", f"[{exc.code}] {exc}")
    _check_objects(files, path, record, out)


def _check_objects(files: Mapping[str, bytes], path: str, record: dict[str, Any],
                   out: ReportVerification) -> None:
    found = record.get("entry")
    entry: dict[str, Any] = found if isinstance(found, dict) else {}
    for kind in ("bundle", "roster"):
        ref = record.get(kind)
        named = entry.get(kind)
        if ref is None:
            if isinstance(named, str) and named.startswith("sha256:"):
                out.fail(path, f"{kind}_reference_missing",
                         f"the entry names {kind} {named[:80]}; the record does not")
            continue
        if ref.get("digest") != named:
            out.fail(path, f"{kind}_reference_mismatch",
                     f"the record names another {kind} than the entry")
            continue
        if ref.get("file") is None:
            out.notes.append(f"{path}: {kind} {named} not in the package "
                             f"({ref.get('reason')})")
            continue
        if ref["file"] in out.verified_objects:
            continue
        data = files.get(ref["file"], b"")
        try:
            if kind == "bundle":
                open_published_bundle(data, named)
            elif roster_digest(data) != named:
                raise VerificationError("its digest is not the one the entry names",
                                        code="roster_digest_mismatch")
            out.count(f"{kind}s")
            out.verified_objects.add(ref["file"])
        except VerificationError as exc:
            out.fail(ref["file"], f"{kind}_digest_mismatch", f"[{exc.code}] {exc}")


def _json_or_none(raw: bytes) -> Any:
    """The decoded form a raw entry has in a record (the evidence package's own)."""
    return decode_entry(raw)
