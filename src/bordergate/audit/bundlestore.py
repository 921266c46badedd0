"""Policy bundles by digest, for replay: fetched from where the custodian publishes them.

A decision entry names the canonical digest of the policy bundle that decided
it (promise 4).  :class:`BundleStore` fetches ``bundles/sha256-<hex>.tar`` from
the bundle store (a :class:`~bordergate.tlog.client.LogSource`: the log's
directory or URL by default), checks it with
:func:`~bordergate.releases.publication.open_published_bundle` (the recomputed
digest must equal the one asked for: anything else is refused), and keeps one
loaded :class:`~bordergate.policy.PolicyBundle` and engine per digest.  Local
bundle directories the auditor names, and the bundle shipped with bordergate,
are used only when their own digest is the one asked for, so they are as
trustworthy as the published archive.

A bundle released before ``exports.toml`` existed (issue 11) is read with the
reading rules of entry version 1: its ``k_min`` is the deployment's as it was
(``v1_k_min`` of the auditor's configuration, default :data:`V1_K_MIN`), and the
lookup says ``legacy`` so that a version 2 entry naming it is reported (a version
2 gateway cannot load it).

This module must never use a bundle whose recomputed digest differs from the
digest an entry names: the digest is recomputed over the very files the engine is
built from (a local directory is digested when first scanned, and again when it
is read for use, since it may have changed in between).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bordergate.errors import BordergateError, ConfigError, VerificationError
from bordergate.policy.bundle import EXPORTS_FILE, PolicyBundle, default_bundle
from bordergate.policy.engine import PolicyEngine
from bordergate.releases.publication import MAX_BUNDLE_BYTES, bundle_path, open_published_bundle
from bordergate.tlog.client import LogSource
from bordergate.tree_digest import digest_directory, digest_files, read_tree

__all__ = ["V1_K_MIN", "BundleLookup", "BundleStore"]

V1_K_MIN = 50
"""``k_min`` of bundles released before ``exports.toml`` existed (issue 11): the
deployment's ``k_min`` then, whose default was 50; an auditor that knows the old
deployment's value sets ``v1_k_min``."""


@dataclass(frozen=True)
class BundleLookup:
    """The answer for one digest: an engine, or why there is none.

    Attributes:
        digest: the digest asked for.
        engine: the engine of the checked bundle, or None.
        code: ``bundle_unavailable`` or ``bundle_digest_mismatch`` when None.
        reason: for people.
        source: where the bundle came from.
        legacy: read with the reading rules of entry version 1 (a bundle released
            before ``exports.toml``: its ``k_min`` is the deployment's, as the
            auditor states it), which a version 2 gateway cannot load.
    """

    digest: str
    engine: PolicyEngine | None
    code: str | None = None
    reason: str = ""
    source: str = ""
    legacy: bool = False


class BundleStore:
    """Checked policy bundles by digest (see the module docstring)."""

    def __init__(self, source: LogSource | None, *, local_dirs: Sequence[str] = (),
                 use_shipped: bool = True, v1_k_min: int = V1_K_MIN) -> None:
        """Look bundles up in ``source`` (published archives), then local directories.

        Args:
            source: the bundle store (None: published archives are not used).
            local_dirs: bundle directories the auditor holds.
            use_shipped: also consider the bundle shipped with bordergate.
            v1_k_min: the ``k_min`` of bundles released before ``exports.toml``
                (the deployment's ``k_min`` then; see :data:`V1_K_MIN`).
        """
        self.source = source
        self.v1_k_min = v1_k_min
        self.local_dirs = tuple(local_dirs)
        self.use_shipped = use_shipped
        self._found: dict[str, BundleLookup] = {}
        self._local: dict[str, str] | None = None

    def lookup(self, digest: str) -> BundleLookup:
        """The checked bundle for ``digest`` (cached; one fetch per digest).

        Raises:
            Unavailable: the bundle store cannot be reached.
        """
        found = self._found.get(digest)
        if found is None:
            found = self._found[digest] = self._lookup(digest)
        return found

    def _lookup(self, digest: str) -> BundleLookup:
        if not isinstance(digest, str) or not digest.startswith("sha256:") or \
                len(digest) != len("sha256:") + 64:
            return BundleLookup(str(digest)[:80], None, "bundle_unavailable",
                                "the entry names no sha256 bundle digest")
        mismatch: BundleLookup | None = None
        if self.source is not None:
            path = bundle_path(digest)
            try:
                data = self.source.fetch(path, MAX_BUNDLE_BYTES)
            except VerificationError as exc:
                data, mismatch = None, BundleLookup(digest, None, "bundle_digest_mismatch",
                                                    f"{path}: {exc}", path)
            if data is not None:
                try:
                    files = open_published_bundle(data, digest)
                    return self._checked(digest, files, path)
                except (VerificationError, ConfigError) as exc:
                    mismatch = BundleLookup(digest, None, "bundle_digest_mismatch",
                                            f"published {path} refused [{exc.code}]: {exc}", path)
        local = self._local_dir(digest)
        if local is not None:
            try:
                # digested again as read: the directory may have changed since it was
                # scanned (the engine is built from these very bytes)
                return self._checked(digest, read_tree(local), local)
            except VerificationError as exc:
                mismatch = mismatch or BundleLookup(digest, None, exc.code or
                                                    "bundle_digest_mismatch",
                                                    f"local bundle {local} [{exc.code}]: {exc}",
                                                    local)
            except (BordergateError, OSError):
                pass
        if mismatch is not None:
            return mismatch
        return BundleLookup(digest, None, "bundle_unavailable",
                            f"no published bundle {bundle_path(digest)} and no local copy")

    def _local_dir(self, digest: str) -> str | None:
        if self._local is None:
            self._local = {}
            for d in self.local_dirs:
                try:
                    self._local.setdefault(digest_directory(d).digest, d)
                except (BordergateError, OSError):
                    continue
            if self.use_shipped:
                try:
                    shipped = default_bundle()
                    self._local.setdefault(shipped.digest, shipped.source)
                except ConfigError:
                    pass
        return self._local.get(digest)


    def _checked(self, digest: str, files: list[tuple[str, bytes]], source: str
                 ) -> BundleLookup:
        """The lookup of a bundle whose files hash to ``digest``: read with today's rules,
        or (a bundle without ``exports.toml``) with those of entry version 1.

        Raises:
            VerificationError: ``bundle_digest_mismatch``: the files do not hash to
                ``digest`` (never an engine of other bytes than the ones checked).
            ConfigError: the bundle does not load with either.
        """
        computed = digest_files(files).digest
        if computed != digest:
            raise VerificationError(f"its files have digest {computed}, not {digest}",
                                    code="bundle_digest_mismatch")
        if EXPORTS_FILE not in dict(files):
            bundle = PolicyBundle(files, source=source, legacy_k_min=self.v1_k_min)
            return BundleLookup(digest, PolicyEngine(bundle), source=source, legacy=True)
        return BundleLookup(digest, PolicyEngine(PolicyBundle(files, source=source)),
                            source=source)
