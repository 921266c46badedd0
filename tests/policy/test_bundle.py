"""Policy bundles: validation at load, the digest, the deterministic archive."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from bordergate.errors import ConfigError, InvalidInput
from bordergate.policy.bundle import (
    DEFAULT_BUNDLE_PATH,
    PolicyBundle,
    archive_files,
    bundle_archive,
    default_bundle,
)
from bordergate.tree_digest import digest_directory, digest_files, read_tree


def default_files() -> dict[str, bytes]:
    return dict(read_tree(DEFAULT_BUNDLE_PATH))


def write_bundle(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_default_bundle_loads_with_ids_and_purposes() -> None:
    """Promise 4: the shipped bundle validates; every policy has an @id; purposes declared."""
    bundle = default_bundle()
    assert len(bundle.policy_ids) == len(set(bundle.policy_ids)) == len(bundle.annotations) == 14
    assert "restricted-never-leaves" in bundle.policy_ids
    assert {"interoperability", "analytics_aggregate", "erasure"} <= set(bundle.purposes)
    assert bundle.digest == digest_directory(DEFAULT_BUNDLE_PATH).digest
    assert bundle.digest.startswith("sha256:") and len(bundle.digest) == 71


def test_digest_matches_shell_pipeline_on_default_bundle() -> None:
    """Promise 4: an auditor recomputes the bundle digest with standard tools."""
    pipeline = (
        "find . -mindepth 1 \\( -name '.*' -o -name __pycache__ \\) -prune -o -type f "
        "-printf '%P\\n' | LC_ALL=C sort | sed 's|^|./|'"
        " | xargs -r -d '\\n' sha256sum | sed 's|  \\./|  |' | sha256sum"
    )
    out = subprocess.run(
        ["sh", "-c", pipeline],
        cwd=DEFAULT_BUNDLE_PATH,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout
    assert default_bundle().digest == "sha256:" + out.split()[0]


def test_purpose_and_reason_lookup() -> None:
    """Issue 5: purposes and reason codes are declared; others are 4xx with stable codes."""
    bundle = default_bundle()
    assert bundle.purpose("legal_request").reason_codes["court_order"]
    bundle.check_reason("legal_request", "court_order")
    with pytest.raises(InvalidInput) as info:
        bundle.purpose("curiosity")
    assert info.value.code == "unknown_purpose"
    with pytest.raises(InvalidInput) as info:
        bundle.check_reason("legal_request", "because")
    assert info.value.code == "unknown_reason_code"


def test_json_schema_and_several_policy_files(tmp_path: Path) -> None:
    """Behaviour: a JSON schema and policies split over files load, in name order."""
    files = default_files()
    files.pop("schema.cedarschema")
    files["schema.cedarschema.json"] = _schema_to_json().encode()
    text = files.pop("policies.cedar").decode()
    head, sep, tail = text.partition("// ---- hard lines")
    files["a-permits.cedar"] = head.encode()
    files["b-forbids.cedar"] = (sep + tail).encode()
    bundle = PolicyBundle.load(write_bundle(tmp_path, files))
    assert bundle.policy_ids == default_bundle().policy_ids


def _schema_to_json() -> str:
    """Hand-written JSON schema equivalent of the default human-format schema."""
    s = {"type": "String"}
    strings = {"type": "Set", "element": {"type": "String"}}
    long = {"type": "Long"}

    def rec(attrs: dict[str, object], optional: tuple[str, ...] = ()) -> dict[str, object]:
        return {
            "type": "Record",
            "attributes": {
                k: {**v, **({"required": False} if k in optional else {})}  # type: ignore[dict-item]
                for k, v in attrs.items()
            },
        }

    approval = rec(
        {
            "id": s,
            "requester": s,
            "purpose": s,
            "collections": strings,
            "classes": strings,
            "valid": {"type": "Boolean"},
            "expires": long,
        }
    )
    ctx = rec(
        {
            "purpose": s,
            "now": long,
            "gateway": s,
            "k_min": long,
            "k": long,
            "approval": {"type": "Approval"},
        },
        optional=("k", "approval"),
    )

    def applies(resource: str) -> dict[str, object]:
        return {
            "appliesTo": {
                "principalTypes": ["Principal"],
                "resourceTypes": [resource],
                "context": {"type": "RequestContext"},
            }
        }

    schema = {
        "": {
            "commonTypes": {"Approval": approval, "RequestContext": ctx},
            "entityTypes": {
                "Principal": {
                    "shape": rec(
                        {"id": s, "org": s, "org_kind": s, "location": s, "roles": strings}
                    )
                },
                "Field": {"shape": rec({"collection": s, "name": s, "class": s, "home": s})},
                "Subject": {"shape": rec({"home": s})},
                "ApprovalRequest": {
                    "shape": rec(
                        {
                            "requester": s,
                            "purpose": s,
                            "collections": strings,
                            "classes": strings,
                            "home": s,
                        }
                    )
                },
            },
            "actions": {
                "read": applies("Field"),
                "write": applies("Field"),
                "export": applies("Field"),
                "erase": applies("Subject"),
                "approve": applies("ApprovalRequest"),
            },
        }
    }
    return json.dumps(schema)


def broken(name: str, change: dict[str, bytes | None]) -> tuple[str, dict[str, bytes | None]]:
    return name, change


POLICIES = default_files()["policies.cedar"].decode()
BROKEN = [
    broken("policy-syntax", {"policies.cedar": b'@id("x") permit (principal, action, resource'}),
    broken("policy-no-id", {"policies.cedar": b"permit (principal, action, resource);"}),
    broken(
        "policy-empty-id", {"policies.cedar": b'@id("") permit (principal, action, resource);'}
    ),
    broken("policy-no-policy", {"policies.cedar": b"// nothing\n"}),
    broken(
        "policy-unknown-attribute",
        {
            "policies.cedar": b'@id("x") permit (principal, action, resource is Field) '
            b'when { resource.colour == "red" };'
        },
    ),
    broken(
        "policy-template",
        {"policies.cedar": b'@id("t") permit (principal == ?principal, action, resource);'},
    ),
    broken(
        "policy-duplicate-id",
        {"zz.cedar": b'@id("restricted-never-leaves") forbid (principal, action, resource);'},
    ),
    broken(
        "policy-names-entity",
        {"zz.cedar": b'@id("vip") permit (principal == Principal::"e0", action, resource);'},
    ),
    broken(
        "policy-names-entity-in-condition",
        {
            "zz.cedar": b'@id("vip") permit (principal, action, resource) '
            b'when { resource == Field::"x" };'
        },
    ),
    broken("policy-not-utf8", {"policies.cedar": b"\xff\xfe"}),
    broken("policy-missing", {"policies.cedar": None}),
    broken("schema-missing", {"schema.cedarschema": None}),
    broken("schema-syntax", {"schema.cedarschema": b"entity Principal = {"}),
    broken("schema-both", {"schema.cedarschema.json": b"{}"}),
    broken("purposes-missing", {"purposes.toml": None}),
    broken("purposes-syntax", {"purposes.toml": b"[purposes"}),
    broken("purposes-empty", {"purposes.toml": b"[purposes]\n"}),
    broken("purposes-extra-table", {"purposes.toml": b"x = 1\n[purposes.a]\n"}),
    broken(
        "purposes-no-reason",
        {"purposes.toml": b'[purposes.a]\ndescription = "d"\nreason_codes = {}\n'},
    ),
    broken(
        "purposes-bad-name",
        {"purposes.toml": b'[purposes.A-B]\ndescription = "d"\nreason_codes = { r = "x" }\n'},
    ),
    broken(
        "purposes-no-description",
        {"purposes.toml": b'[purposes.a]\nreason_codes = { r = "x" }\n'},
    ),
    broken("exports-missing", {"exports.toml": None}),  # issue 11 item 3: k is the bundle's
    broken("exports-k-zero", {"exports.toml": b"k_min = 0\n"}),
    broken("exports-k-not-integer", {"exports.toml": b'k_min = "25"\n'}),
    broken("exports-extra-key", {"exports.toml": b"k_min = 25\nk_max = 3\n"}),
]


@pytest.mark.parametrize(("name", "change"), BROKEN, ids=[n for n, _ in BROKEN])
def test_broken_bundle_is_config_error_naming_the_file(
    tmp_path: Path, name: str, change: dict[str, bytes | None]
) -> None:
    """Promise 6 support: a wrong bundle refuses to load, naming the file at fault."""
    files = default_files()
    for path, data in change.items():
        if data is None:
            files.pop(path)
        else:
            files[path] = data
    root = write_bundle(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        PolicyBundle.load(root)
    assert str(root) in str(info.value)
    named = [p for p in change if p.endswith((".cedar", ".toml", ".cedarschema"))]
    if name not in ("policy-missing", "schema-missing", "schema-both", "purposes-missing"):
        assert any(p in str(info.value) for p in named), str(info.value)


def test_symlink_in_bundle_is_refused(tmp_path: Path) -> None:
    """Promise 6: the bundle digest must cover what is evaluated; a symlink could escape it."""
    root = write_bundle(tmp_path / "b", default_files())
    (tmp_path / "elsewhere.cedar").write_text('@id("x") permit (principal, action, resource);')
    (root / "extra.cedar").symlink_to(tmp_path / "elsewhere.cedar")
    with pytest.raises(ConfigError) as info:
        PolicyBundle.load(root)
    assert info.value.code == "digest_bad_file"


def test_hidden_policy_file_is_neither_loaded_nor_digested(tmp_path: Path) -> None:
    """Promise 4: what is evaluated is exactly what is digested (hidden files are skipped)."""
    root = write_bundle(tmp_path, default_files())
    (root / ".sneaky.cedar").write_text('@id("sneaky") permit (principal, action, resource);')
    bundle = PolicyBundle.load(root)
    assert "sneaky" not in bundle.policy_ids
    assert bundle.digest == default_bundle().digest


def test_archive_is_deterministic_and_has_the_bundle_digest(tmp_path: Path) -> None:
    """Promise 6: the published archive is byte-identical for equal bundles and digests alike."""
    first = bundle_archive(DEFAULT_BUNDLE_PATH)
    root = write_bundle(tmp_path, default_files())
    os.utime(root / "policies.cedar", (1, 1))
    (root / "purposes.toml").chmod(0o600)
    assert bundle_archive(root) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [p for p, _ in default_bundle().files]
        assert all(
            (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644)
            and m.isfile()
            for m in members
        )
        unpacked = [(m.name, tar.extractfile(m).read()) for m in members]  # type: ignore[union-attr]
    assert digest_files(unpacked).digest == default_bundle().digest


def test_archive_changes_with_content() -> None:
    """Promise 6: different bundle bytes give a different archive."""
    files = default_files()
    base = archive_files(files.items())
    files["README.md"] = b"note\n"
    assert archive_files(files.items()) != base
