"""The auditor's bundle store: published bundles read from a directory or a URL, and a
missing bundle reported as missing (issue 12 item 6; promise 4)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bordergate.audit.bundlestore import BundleStore
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH, default_bundle
from bordergate.releases.publication import publish_bundle
from bordergate.tlog.client import open_source
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tree_digest import read_tree


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """A directory holding the default bundle as ``bundles/sha256-<hex>.tar`` (a log
    directory or a plain bundle store alike)."""
    storage = FileStorage(tmp_path / "store")
    try:
        publish_bundle(storage, read_tree(DEFAULT_BUNDLE_PATH))
    finally:
        storage.close()
    return tmp_path / "store"


@pytest.fixture
def served(published: Path) -> Iterator[str]:
    """The same directory served over HTTP on a real socket."""
    handler = functools.partial(_QuietHandler, directory=str(published))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.mark.parametrize("where", ["directory", "url"])
def test_published_bundle_is_read_from_a_directory_or_url(
        where: str, published: Path, served: str) -> None:
    """Promise 4: the published archive is found, digest-checked and used (not only a
    local copy): the shipped bundle is switched off, so only the store can answer."""
    location = str(published) if where == "directory" else served
    store = BundleStore(open_source(location), use_shipped=False)
    digest = default_bundle().digest
    found = store.lookup(digest)
    assert found.engine is not None and found.engine.digest == digest, found.reason
    assert found.source.startswith("bundles/sha256-")


@pytest.mark.parametrize("where", ["directory", "url"])
def test_missing_bundle_is_unavailable_not_a_digest_mismatch(
        where: str, published: Path, served: str) -> None:
    """Promise 4: a digest nobody published is ``bundle_unavailable`` (a bundle that is
    not there), never ``bundle_digest_mismatch`` (a bundle that lies about itself)."""
    location = str(published) if where == "directory" else served
    store = BundleStore(open_source(location), use_shipped=False)
    missing = store.lookup("sha256:" + "0" * 64)
    assert missing.engine is None and missing.code == "bundle_unavailable"
