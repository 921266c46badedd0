"""The gateway's start-up self-check: run only reviewed code and policy (promise 6).

At start a gateway calls :func:`check_release`.  It digests the package
directory the process actually imported bordergate from (and checks that every
loaded ``bordergate`` module comes from there) and the policy bundle directory
it will load, reads the release entries of its log (incrementally, see
``releases.index``) and looks for an approved release naming both digests.
Found: it returns a :class:`StartCheck` holding that release **and the exact
policy bytes it digested**; the gateway builds its one ``PolicyBundle`` from
those bytes (:meth:`StartCheck.policy_bundle`) and never reads the directory
again, so a change on disk while running is ignored until a restart, which
checks again (no hot-loading of unreviewed policy).  Not found: it raises
``ConfigError(code="release_not_approved")`` saying which digest no approved
release names, and the command that proposes it.  ``unreviewed=True`` (the
``--unreviewed`` development flag) returns a check with ``reviewed=False``
instead; the gateway's ``gateway-start`` entry (:meth:`StartCheck.start_body`)
then records ``reviewed: false`` and every audit flags it.

This module must never write to the log itself: the gateway appends the
``gateway-start`` entry through its own sequencer before serving.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bordergate.errors import ConfigError, VerificationError
from bordergate.releases.deployment_slice import (
    DeploymentSlice,
    SettingsFiles,
    deployment_slice,
    diff_settings,
    read_settings_files,
)
from bordergate.releases.index import ReleaseIndex
from bordergate.releases.ledger import ReleaseLedger, ReleaseRecord
from bordergate.releases.manifest import installed_package_dir
from bordergate.releases.review import Reviewer, ReviewPolicy
from bordergate.releases.runtime import RuntimeSlice, current_runtime, diff_slices
from bordergate.tlog.client import LogClient
from bordergate.tlog.cosignature import count_witnesses
from bordergate.tree_digest import FileListDigest, digest_files, read_tree

if TYPE_CHECKING:
    from bordergate.config import Deployment, Jurisdiction
    from bordergate.policy.bundle import PolicyBundle
    from bordergate.tlog.checkpoint import SignedCheckpoint
    from bordergate.tlog.storage import LogStorage

__all__ = ["StartCheck", "check_release", "default_index_file", "gateway_self_check",
           "loaded_outside", "review_policy", "start_check"]


@dataclass(frozen=True)
class StartCheck:
    """What the self-check established.

    Attributes:
        reviewed: an approved release names both digests.
        release: that release (None when unreviewed).
        package_dir: the package directory digested.
        package_digest: its digest.
        policy_dir: the policy bundle directory digested.
        policy_digest: its digest.
        policy_files: the policy bundle's exact bytes that were digested.
        log_size: the log size the check covered.
        runtime_digest: the attested runtime's digest, None when the process
            was not started through ``runtime_boot`` (development).
        deployment_digest: the deployment slice's digest, when checked.
        settings_files: the schema and issuer key bytes that slice digested
            (:func:`gateway_self_check`); the gateway loads exactly these, never
            the files again.
    """

    reviewed: bool
    release: ReleaseRecord | None
    package_dir: Path
    package_digest: str
    policy_dir: Path
    policy_digest: str
    policy_files: tuple[tuple[str, bytes], ...]
    log_size: int
    runtime_digest: str | None = None
    deployment_digest: str | None = None
    settings_files: SettingsFiles | None = None

    def policy_bundle(self) -> PolicyBundle:
        """The policy bundle built from the checked bytes (load it once, never again).

        Raises:
            ConfigError: the bundle does not validate.
        """
        from bordergate.policy.bundle import PolicyBundle
        return PolicyBundle(self.policy_files, source=str(self.policy_dir))

    @property
    def release_id(self) -> str | None:
        """The approved release's id, or None for an unreviewed start."""
        return self.release.id if self.release is not None else None

    def start_body(self, gateway: str) -> dict[str, Any]:
        """The body of this start's ``gateway-start`` entry."""
        return {"gateway": gateway, "release": self.release.id if self.release else None,
                "reviewed": self.reviewed, "package": self.package_digest,
                "policy": self.policy_digest, "runtime": self.runtime_digest,
                "deployment": self.deployment_digest}


def loaded_outside(package_dir: Path, modules: Mapping[str, Any] | None = None) -> list[str]:
    """Names of loaded ``bordergate`` modules whose file is not under ``package_dir``."""
    root = str(package_dir.resolve()) + os.sep
    out = []
    for name, module in list((modules if modules is not None else sys.modules).items()):
        if name != "bordergate" and not name.startswith("bordergate."):
            continue
        file = getattr(module, "__file__", None)
        if file is not None and not str(Path(file).resolve()).startswith(root):
            out.append(name)
    return sorted(out)


def _refusal(package: FileListDigest, policy: FileListDigest, package_dir: Path,
             policy_dir: Path, ledger: ReleaseLedger, *, config_hint: str) -> ConfigError:
    both = ledger.naming(package.digest, policy.digest)
    lines = [f"no approved release in log {ledger.log} names this gateway's code and policy:"]
    pkg_ok = any(r.state == "approved" for r in ledger.naming(package.digest))
    pol_ok = any(r.state == "approved" for r in ledger.naming(policy_digest=policy.digest))
    lines.append(f"  package digest {package.digest} ({package_dir}): "
                 + ("in an approved release" if pkg_ok else "MISSING from every approved release"))
    lines.append(f"  policy digest  {policy.digest} ({policy_dir}): "
                 + ("in an approved release" if pol_ok else "MISSING from every approved release"))
    for r in both:
        vetoed = sorted(set(r.rejections) | {v for v in r.vetoes if v not in r.approvals})
        lines.append(f"  release {r.id} (entry {r.index}) names both but is {r.state}: "
                     f"{len(r.approvals)}/{r.required} approvals"
                     + (f", rejected by {', '.join(vetoed)}" if vetoed else "")
                     + (" (in a rejection of the same content proposed before)"
                        if any(v not in r.rejections for v in vetoed) else ""))
    if not both:
        lines.append(f"propose it: bordergate release propose {config_hint} --policy {policy_dir}")
    lines.append("then the reviewers run: bordergate release review <release id> "
                 f"{config_hint} --key-file <their key> --verdict approve --note '...'")
    missing = "package" if not pkg_ok else "policy" if not pol_ok else "approval"
    return ConfigError("\n".join(lines), code="release_not_approved" if missing == "approval"
                       else f"release_{missing}_not_approved")


def _matching(ledger: ReleaseLedger, package: str, policy: str,
              deployment: DeploymentSlice | None, runtime: RuntimeSlice | None
              ) -> tuple[ReleaseRecord | None, ReleaseRecord | None]:
    """(the latest approved release matching everything, the latest naming the code and policy)."""
    named = [r for r in ledger.naming(package, policy) if r.state == "approved"]
    fits = [r for r in named
            if (deployment is None or (r.manifest.deployment is not None
                                       and r.manifest.deployment.digest == deployment.digest))
            and (runtime is None or (r.manifest.runtime is not None
                                     and r.manifest.runtime.digest == runtime.digest))]
    latest = max(named, key=lambda r: r.index) if named else None
    return (max(fits, key=lambda r: r.index) if fits else None), latest


def _mismatch(near: ReleaseRecord, deployment: DeploymentSlice | None,
              runtime: RuntimeSlice | None, config_hint: str) -> ConfigError:
    """Name the settings or runtime parts that differ from the nearest approved release."""
    lines = [f"the approved release {near.id} (entry {near.index}) names this code and policy "
             "but not this deployment or runtime:"]
    approved_dep, approved_rt = near.manifest.deployment, near.manifest.runtime
    code = "release_runtime_not_approved"
    if deployment is not None and (approved_dep is None
                                   or approved_dep.digest != deployment.digest):
        code = "release_deployment_not_approved"
        if approved_dep is None:
            lines.append("  the release records no deployment settings")
        else:
            lines += [f"  setting {d}" for d in diff_settings(approved_dep, deployment)]
    if runtime is not None and (approved_rt is None or approved_rt.digest != runtime.digest):
        if approved_rt is None:
            lines.append("  the release records no runtime (proposed from a development "
                         "environment?)")
        else:
            lines += [f"  runtime {d}" for d in diff_slices(approved_rt, runtime)]
    lines.append(f"propose a release for them: bordergate release propose {config_hint}")
    return ConfigError("\n".join(lines), code=code)


def _with_setting_changes(refusal: ConfigError, ledger: ReleaseLedger,
                          deployment: DeploymentSlice | None) -> ConfigError:
    """``refusal``, naming the settings that differ from the latest approved release."""
    approved = [r for r in ledger.releases.values()
                if r.state == "approved" and r.manifest.deployment is not None]
    if deployment is None or not approved:
        return refusal
    latest = max(approved, key=lambda r: r.index)
    assert latest.manifest.deployment is not None
    changes = diff_settings(latest.manifest.deployment, deployment)
    if not changes:
        return refusal
    lines = [f"settings that differ from the latest approved release {latest.id} "
             f"(entry {latest.index}):", *(f"  setting {c}" for c in changes)]
    return ConfigError(f"{refusal}\n" + "\n".join(lines), code=refusal.code)


def check_release(client: LogClient, policy: ReviewPolicy, policy_dir: str | os.PathLike[str],
                  *, package_dir: str | os.PathLike[str] | None = None,
                  unreviewed: bool = False, index_file: Path | None = None,
                  config_hint: str = "--config <deployment.toml>",
                  deployment: DeploymentSlice | None = None,
                  runtime: RuntimeSlice | None = None,
                  require_runtime: bool = False, witness_quorum: int = 0) -> StartCheck:
    """Check that an approved release names the installed code and the policy bundle.

    Args:
        client: a verifying reader of the gateway's own log.
        policy: the jurisdiction's reviewers and required approvals.
        policy_dir: the policy bundle directory the gateway will load.
        package_dir: the bordergate package directory (default: the one this
            process imported, after checking every loaded bordergate module
            comes from it).
        unreviewed: start anyway when no approved release matches (development).
        index_file: where to keep the release index between starts (None: full scan).
        config_hint: the ``--config ... --jurisdiction ...`` words for the message.
        deployment: the jurisdiction's deployment slice; the release must record
            exactly it (None: not checked).
        runtime: the attested runtime; the release must record exactly it
            (None: the process was not attested).
        require_runtime: refuse an unattested process (the production profile).
        witness_quorum: distinct witnesses among ``client.cosigners`` that must
            have cosigned the checkpoint the release entries are read under (the
            log operator alone could sign a fork); an empty log's needs none.

    Returns:
        The check, with the policy bytes to load.

    Raises:
        ConfigError: ``release_package_not_approved`` / ``release_policy_not_approved``
            / ``release_not_approved`` (no approved release names both digests;
            the message says which is missing and how to propose it);
            ``release_deployment_not_approved`` / ``release_runtime_not_approved``
            (one does, but with other settings or another runtime: the message
            names each setting and runtime part that differs);
            ``runtime_not_attested`` (``require_runtime`` without a runtime);
            ``package_not_loaded_from_checked_dir``; a directory unreadable.
        VerificationError: the log does not verify.
        Unavailable: the log cannot be read.
    """
    if package_dir is None:
        pkg_dir = installed_package_dir()
        strays = loaded_outside(pkg_dir)
        if strays:
            raise ConfigError(f"modules {', '.join(strays[:5])} were not loaded from {pkg_dir}, "
                              "the package directory being checked",
                              code="package_not_loaded_from_checked_dir")
    else:
        pkg_dir = Path(package_dir)
    pol_dir = Path(policy_dir)
    if require_runtime and runtime is None:
        raise ConfigError("this gateway was not started through its attested runtime "
                          "(production needs it): run it from an environment built by "
                          "`bordergate release build-runtime`", code="runtime_not_attested")
    package = digest_files(read_tree(pkg_dir))
    policy_files = tuple(read_tree(pol_dir))
    bundle = digest_files(policy_files)
    origin = client.verifier.name
    index = ReleaseIndex.load(index_file, origin)
    signed = index.update(client)
    _require_witnessed(signed, client, witness_quorum)  # before the cache keeps its edge
    if index_file is not None:
        try:
            index.save(index_file)
        except OSError as e:  # the index is only a cache: the next start rescans
            logging.getLogger(__name__).warning("release index %s not saved: %s",
                                                index_file, e)
    ledger = ReleaseLedger(policy, log=signed.checkpoint.origin)
    ledger.add_all(index.parsed())
    if deployment is not None and deployment.settings.get("policy_bundle") != bundle.digest:
        raise ConfigError(f"{pol_dir} changed while being checked", code="policy_changed")
    release, near = _matching(ledger, package.digest, bundle.digest, deployment, runtime)
    if release is None and not unreviewed:
        if near is not None:
            raise _mismatch(near, deployment, runtime, config_hint)
        refusal = _refusal(package, bundle, pkg_dir, pol_dir, ledger, config_hint=config_hint)
        raise _with_setting_changes(refusal, ledger, deployment)
    return StartCheck(reviewed=release is not None, release=release, package_dir=pkg_dir,
                      package_digest=package.digest, policy_dir=pol_dir,
                      policy_digest=bundle.digest, policy_files=policy_files,
                      log_size=index.size,
                      runtime_digest=runtime.digest if runtime is not None else None,
                      deployment_digest=deployment.digest if deployment is not None else None)


def _require_witnessed(signed: SignedCheckpoint, client: LogClient, quorum: int) -> None:
    """Refuse release entries read under a checkpoint short of the witness quorum.

    Raises:
        VerificationError: ``witness_quorum_not_met`` (an empty log needs no
            cosignature: it holds no release to start from).
    """
    if signed.checkpoint.size == 0 or quorum <= 0:
        return
    witnesses = count_witnesses(((c.name, c.key_id) for c in signed.cosignatures),
                                client.cosigners)
    if witnesses < quorum:
        raise VerificationError(
            f"the checkpoint of size {signed.checkpoint.size} the release entries were read "
            f"under is cosigned by {witnesses} distinct trusted witness(es), {quorum} "
            "required: a checkpoint the log operator alone signed may be a fork",
            code="witness_quorum_not_met")


def review_policy(jurisdiction: Jurisdiction) -> ReviewPolicy:
    """The reviewers and required approvals the deployment file gives ``jurisdiction``.

    Raises:
        ConfigError: a reviewer key does not parse (``reviewer_key_invalid``).
    """
    return ReviewPolicy(tuple(Reviewer.from_key_string(r.name, r.public_key)
                              for r in jurisdiction.reviewers),
                        jurisdiction.required_approvals)


def gateway_self_check(deployment: Deployment, code: str, storage: LogStorage, *,
                       unreviewed: bool = False, index_file: Path | None = None,
                       package_dir: str | os.PathLike[str] | None = None) -> StartCheck:
    """:func:`check_release` for jurisdiction ``code`` of a deployment (the gateway's call).

    Args:
        deployment: the loaded deployment file.
        code: the jurisdiction the gateway serves.
        storage: that jurisdiction's log storage (read only here).
        unreviewed: the ``--unreviewed`` development flag.
        index_file: where to keep the release index between starts.
        package_dir: for tests: a package directory other than the imported one.

    Returns:
        The check; build the policy bundle with :meth:`StartCheck.policy_bundle`,
        load the schema and issuer keys from :attr:`StartCheck.settings_files`
        and append ``encode_entry("gateway-start", now, check.start_body(code))``
        before serving.

    Raises:
        ConfigError: as :func:`check_release` (with this jurisdiction's
            deployment slice, the attested runtime, and, under the production
            profile, an attested runtime required), or the log's verifier key is unreadable.
        VerificationError: the log does not verify, or its checkpoint lacks the
            witness quorum (``witness_quorum_not_met``).
        Unavailable: the log cannot be read.
    """
    from bordergate.log_access import witness_cosigners
    from bordergate.tlog.client import StorageSource
    from bordergate.tlog.note import Ed25519Verifier
    j = deployment.jurisdiction(code)
    files = read_settings_files(deployment, code)  # once: the gateway loads these
    # the release entries are read under the log key the slice names, and under a
    # checkpoint its witnesses (also in the slice) cosigned: the log operator holds
    # the key, so a checkpoint it alone signed may be a fork without a rejection
    client = LogClient(StorageSource(storage), Ed25519Verifier.from_key_string(files.log_key),
                       cosigners=witness_cosigners(j))
    runtime = current_runtime()
    if runtime is None and not deployment.profile.requires_attested_runtime:
        logging.getLogger(__name__).warning(
            "gateway %s: runtime attestation OFF (not started from a built runtime; allowed "
            "by the %s profile): gateway-start records runtime: null", code,
            deployment.profile.value)
    check = check_release(client, review_policy(j), deployment.policy_bundle_path,
                          package_dir=package_dir, unreviewed=unreviewed,
                          index_file=index_file,
                          config_hint=f"--config {deployment.path} --jurisdiction {code}",
                          deployment=deployment_slice(deployment, code, files=files),
                          runtime=runtime,
                          require_runtime=deployment.profile.requires_attested_runtime,
                          witness_quorum=j.log.quorum)
    return dataclasses.replace(check, settings_files=files)


def default_index_file(jurisdiction: Jurisdiction) -> Path:
    """Where a gateway keeps its release index: beside its log key, or the log's
    verifier key when it holds no log key (never served)."""
    log = jurisdiction.log
    key = log.key_file or log.vkey_file or log.pseudonym_secret_file
    return key.with_name(key.name + ".release-index.json")


def start_check(deployment: Deployment, code: str, *, unreviewed: bool) -> StartCheck:
    """The gateway's start-up call: :func:`gateway_self_check` on its own read handle.

    Opens the jurisdiction's log storage read-only (the sequencer need not run
    yet), keeps the release index beside the log key
    (:func:`default_index_file`) and closes the storage again.  The gateway then
    builds its engine from :meth:`StartCheck.policy_bundle` and logs
    ``gateway-start`` with :attr:`StartCheck.release_id` and
    ``reviewed = StartCheck.reviewed``.

    Raises:
        ConfigError: ``release_*_not_approved`` and the rest, as :func:`check_release`.
        VerificationError: the log does not verify.
        Unavailable: the log cannot be read.
    """
    from bordergate.tlog.storage import open_storage
    j = deployment.jurisdiction(code)
    storage = open_storage(j.log.storage)
    try:
        return gateway_self_check(deployment, code, storage, unreviewed=unreviewed,
                                  index_file=default_index_file(j))
    finally:
        storage.close()
