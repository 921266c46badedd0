"""A published policy bundle whose Cedar or TOML would kill the parser is refused, not loaded.

Found by a review of what the auditor reads from outside the log: the auditor loads
the bundle an entry names from the bundle store (by default the log's own directory,
served by the log operator) once its digest matches -- and a digest matches whatever
files someone chose to publish.  Cedar's parser recurses natively: a policy of about
600 nested parentheses, or a schema type nested 10,000 deep, makes it overflow its
stack, and the whole ``audit run`` process died of a segmentation fault, with no
report, at every run (nothing is saved before the entry is inspected).  A TOML file
of deeply nested arrays raised ``RecursionError`` through the loader the same way.
So the log operator alone (it appends the entry naming the bundle and serves the
bundle store) could stop every audit of its log.

The loader now measures Cedar text before parsing it (``MAX_NESTING``,
``MAX_STATEMENT_TOKENS``: ``policy_too_complex``) and turns a TOML recursion into its
file's ``ConfigError``; the auditor reports the entry's bundle as refused
(``bundle_digest_mismatch``) and goes on.  The audit runs as the real ``bordergate``
command in its own process; test-only keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.releases.publication import publish_bundle
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tree_digest import digest_files, read_tree
from tests.audit.scenario import LOCAL, EntryFactory
from tests.audit.test_hostile_entries import auditor_config, witnessed_log
from tests.tlog.witnessed import bordergate


def hostile_files(which: str) -> list[tuple[str, bytes]]:
    """The default bundle with one file made hostile."""
    files = dict(read_tree(DEFAULT_BUNDLE_PATH))
    if which == "policy-parentheses":
        files["policies.cedar"] += (b'\n@id("deep")\npermit (principal, action, resource) '
                                    b"when { " + b"(" * 2000 + b"true" + b")" * 2000 + b" };\n")
    elif which == "policy-chain":
        files["policies.cedar"] += (b'\n@id("long")\npermit (principal, action, resource) '
                                    b"when { " + b" && ".join([b"true"] * 100_000) + b" };\n")
    elif which == "schema-nesting":
        files["schema.cedarschema"] += (b"\nentity Deep = { x: " + b"Set<" * 20_000 + b"Long"
                                        + b">" * 20_000 + b" };\n")
    elif which == "toml-nesting":
        files["purposes.toml"] = b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n" + \
            files["purposes.toml"]
    return sorted(files.items())


@pytest.mark.parametrize("which", ["policy-parentheses", "policy-chain", "schema-nesting",
                                   "toml-nesting"])
def test_a_bundle_that_would_kill_the_parser_is_reported_not_loaded(
        tmp_path: Path, which: str) -> None:
    """Promise 4 (each decision is replayed with the bundle it names, and the audit
    ends with an answer): an access entry names a bundle, published under its true
    digest, whose policy nests 2,000 parentheses (or chains 100,000 ``&&``, or whose
    schema nests 20,000 ``Set<``, or whose purposes.toml nests 5,000 arrays).  The
    audit ends with a written report (exit 1) naming that entry's bundle as refused,
    ``policy_too_complex`` (or ``purposes_invalid``) in the reason, instead of dying."""
    files = hostile_files(which)
    digest = digest_files(files).digest
    entry = json.loads(EntryFactory().access(LOCAL, ["handle"]))
    entry["bundle"] = digest
    log = tmp_path / "log"
    witnessed_log(log, [json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()])
    storage = FileStorage(log)
    try:
        publish_bundle(storage, files)
    finally:
        storage.close()
    config = auditor_config(tmp_path / "audit", log)
    proc = bordergate("audit", "run", "--config", str(config), "--state",
                      str(tmp_path / "audit" / "state"), "--report",
                      str(tmp_path / "audit" / "report"), "--json", timeout=300)
    assert proc.returncode == 1, (proc.returncode, proc.stderr.decode()[-1500:])
    report = json.loads((tmp_path / "audit" / "report" / "report.json").read_text())
    refused = [f for f in report["findings"] if f["kind"] == "bundle_digest_mismatch"]
    assert [f["index"] for f in refused] == [0], report["findings"]
    expected = "purposes_invalid" if which == "toml-nesting" else "policy_too_complex"
    assert expected in json.dumps(refused[0]), refused[0]
