"""The canonical-file-list digest of a directory (policy bundles, packages).

One scheme, used for the policy bundle digest in every decision entry and for
the package digest in release entries (docs/design.md, promises 4 and 6), chosen so
that anyone can recompute it with standard tools:

1. Take every regular file under the directory, at any depth, skipping every
   entry whose name starts with ``.`` (hidden files and directories) and every
   directory named ``__pycache__`` (byte-code caches are not content).
2. Name each file by its path relative to the directory, POSIX separators, no
   leading ``./``.  A symbolic link, a device, a FIFO or a socket anywhere in
   the (non-skipped) tree is an error, as is a path that is not valid UTF-8 or
   holds a backslash, a newline or another control character (``sha256sum``
   would escape such names and the pipeline below would diverge).
3. Sort the paths by their UTF-8 bytes (what ``LC_ALL=C sort`` does).
4. For each file write the line ``<sha256 hex of the bytes>  <path>\\n``
   (lower-case hex, two spaces: exactly ``sha256sum`` output).
5. The digest is the SHA-256 of the concatenated lines, printed
   ``sha256:<hex>``.

The same digest from a shell, run inside the directory::

    find . -mindepth 1 \\( -name '.*' -o -name __pycache__ \\) -prune -o -type f -printf '%P\\n' \\
      | LC_ALL=C sort | sed 's|^|./|' | xargs -r -d '\\n' sha256sum | sed 's|  \\./|  |' | sha256sum

(the result is the hex after ``sha256:``).  ``digest_files`` computes the same
over in-memory ``(path, bytes)`` pairs, for archives and tests.

This module is pure apart from ``read_tree``/``digest_directory``, which only
read files; it must never write, follow symbolic links or skip a file silently
other than by the two rules of step 1.  It is a leaf shared by ``policy``
(the bundle digest) and ``releases`` (the package digest): it must never
import either.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bordergate.errors import ConfigError

__all__ = [
    "DIGEST_PREFIX",
    "FileListDigest",
    "digest_directory",
    "digest_files",
    "read_tree",
]

DIGEST_PREFIX = "sha256:"
_SKIPPED_DIRECTORIES = frozenset({"__pycache__"})


@dataclass(frozen=True)
class FileListDigest:
    """The digest of a canonical file list and the list itself.

    Attributes:
        digest: ``sha256:<hex>`` over the ``sha256sum``-style lines.
        files: ``(relative path, sha256 hex)`` pairs in canonical order.
    """

    digest: str
    files: tuple[tuple[str, str], ...]

    def manifest(self) -> str:
        """Return the ``sha256sum``-style lines whose SHA-256 is the digest."""
        return "".join(f"{sha}  {path}\n" for path, sha in self.files)


def _check_path(path: str) -> None:
    if (
        not path
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise ConfigError(f"{path!r}: not a clean relative path", code="digest_bad_path")
    if "\\" in path or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        raise ConfigError(
            f"{path!r}: backslashes and control characters are not allowed in names",
            code="digest_bad_path",
        )
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"{path!r}: not valid UTF-8", code="digest_bad_path") from exc


def _sort_key(path: str) -> bytes:
    return path.encode("utf-8")


def digest_files(files: Iterable[tuple[str, bytes]]) -> FileListDigest:
    """Digest in-memory files with the canonical-file-list scheme.

    Args:
        files: ``(relative POSIX path, content)`` pairs, in any order.  The
            skip rules of step 1 are not applied here: every pair counts.

    Returns:
        The digest and the canonical ``(path, sha256 hex)`` list.

    Raises:
        ConfigError: a path is not clean (absolute, ``..``, empty parts,
            backslash or control characters) or appears twice
            (code ``digest_bad_path``).
    """
    entries: dict[str, str] = {}
    for path, content in files:
        _check_path(path)
        if path in entries:
            raise ConfigError(f"{path!r}: listed twice", code="digest_bad_path")
        entries[path] = hashlib.sha256(content).hexdigest()
    ordered = tuple(sorted(entries.items(), key=lambda item: _sort_key(item[0])))
    manifest = "".join(f"{sha}  {path}\n" for path, sha in ordered)
    outer = hashlib.sha256(manifest.encode("utf-8")).hexdigest()
    return FileListDigest(digest=DIGEST_PREFIX + outer, files=ordered)


def _walk(root: Path, relative: str, out: list[tuple[str, bytes]]) -> None:
    directory = root / relative if relative else root
    with os.scandir(directory) as listing:
        names = sorted(entry.name for entry in listing)
    for name in names:
        if name.startswith("."):
            continue
        rel = f"{relative}/{name}" if relative else name
        mode = os.lstat(root / rel).st_mode
        if stat.S_ISDIR(mode):
            if name not in _SKIPPED_DIRECTORIES:
                _walk(root, rel, out)
        elif stat.S_ISREG(mode):
            _check_path(rel)
            out.append((rel, (root / rel).read_bytes()))
        else:
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise ConfigError(f"{root / rel}: {kind}", code="digest_bad_file")


def read_tree(directory: str | os.PathLike[str]) -> list[tuple[str, bytes]]:
    """Read every file that the digest scheme covers under ``directory``.

    Args:
        directory: the root of the tree.

    Returns:
        ``(relative path, content)`` pairs in canonical order.

    Raises:
        ConfigError: the directory is missing or unreadable
            (``digest_unreadable``), holds a symlink or special file
            (``digest_bad_file``) or a badly named file (``digest_bad_path``).
    """
    root = Path(directory)
    out: list[tuple[str, bytes]] = []
    try:
        if not root.is_dir() or root.is_symlink():
            raise ConfigError(f"{root}: not a directory", code="digest_unreadable")
        _walk(root, "", out)
    except OSError as exc:
        raise ConfigError(f"{root}: cannot read: {exc}", code="digest_unreadable") from exc
    out.sort(key=lambda item: _sort_key(item[0]))
    return out


def digest_directory(directory: str | os.PathLike[str]) -> FileListDigest:
    """Digest a directory with the canonical-file-list scheme.

    Args:
        directory: the root of the tree (a policy bundle, a package).

    Returns:
        The digest and the canonical ``(path, sha256 hex)`` list.

    Raises:
        ConfigError: as ``read_tree``.
    """
    return digest_files(read_tree(directory))
