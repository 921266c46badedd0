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

This module must never use a bundle whose recomputed digest differs from the
digest an entry names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bordergate.errors import BordergateError, ConfigError, VerificationError
from bordergate.policy.bundle import PolicyBundle, default_bundle
from bordergate.policy.engine import PolicyEngine
from bordergate.releases.publication import MAX_BUNDLE_BYTES, bundle_path, open_published_bundle
from bordergate.tlog.client import LogSource
from bordergate.tree_digest import digest_directory

__all__ = ["BundleLookup", "BundleStore"]


@dataclass(frozen=True)
class BundleLookup:
    """The answer for one digest: an engine, or why there is none.

    Attributes:
        digest: the digest asked for.
        engine: the engine of the checked bundle, or None.
        code: ``bundle_unavailable`` or ``bundle_digest_mismatch`` when None.
        reason: for people.
        source: where the bundle came from.
    """

    digest: str
    engine: PolicyEngine | None
    code: str | None = None
    reason: str = ""
    source: str = ""


class BundleStore:
    """Checked policy bundles by digest (see the module docstring)."""

    def __init__(self, source: LogSource | None, *, local_dirs: Sequence[str] = (),
                 use_shipped: bool = True) -> None:
        """Look bundles up in ``source`` (published archives), then local directories.

        Args:
            source: the bundle store (None: published archives are not used).
            local_dirs: bundle directories the auditor holds.
            use_shipped: also consider the bundle shipped with bordergate.
        """
        self.source = source
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
                    return BundleLookup(digest, _engine(files, path), source=path)
                except (VerificationError, ConfigError) as exc:
                    mismatch = BundleLookup(digest, None, "bundle_digest_mismatch",
                                            f"published {path} refused: {exc}", path)
        local = self._local_dir(digest)
        if local is not None:
            try:
                return BundleLookup(digest, PolicyEngine(PolicyBundle.load(local)),
                                    source=local)
            except ConfigError:
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


def _engine(files: list[tuple[str, bytes]], source: str) -> PolicyEngine:
    return PolicyEngine(PolicyBundle(files, source=source))
