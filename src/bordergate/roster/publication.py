"""Roster versions beside the log: the published document, the ``roster`` entry, the key.

A signed version is published in two parts (docs/design.md, "The identity
authority"):

* the document, content-addressed beside the policy bundles as
  ``rosters/sha256-<hex>.json`` (:func:`publish_roster`), written *before*
  the entry so that a gateway that sees the entry can read it;
* its digest, serial and the authority's signature, as a ``roster`` entry of
  the jurisdiction's log (:func:`roster_entry`), appended through the log's
  single writer (``bordergate roster publish``).

:func:`authority_for` gives the identity authority a deployment names for a
jurisdiction.  :func:`create_development_authority_key` is for the development
and demo profiles only: a real authority keeps its key on its own side and the
custodian never sees it.

This module must never publish a document whose signature it did not check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from bordergate.config import Jurisdiction
from bordergate.entries import encode_entry
from bordergate.roster.document import Roster, roster_path
from bordergate.roster.signing import RosterAuthority, RosterSignature
from bordergate.tlog.logdir import make_dirs, read_signer, write_key
from bordergate.tlog.note import Signer

__all__ = ["ObjectWriter", "authority_for", "create_development_authority_key",
           "publish_roster", "roster_entry"]


class ObjectWriter(Protocol):
    """A log storage that holds content-addressed objects."""

    def write_object(self, path: str, data: bytes) -> None:
        """Durably store ``data`` at ``path``."""


def authority_for(jurisdiction: Jurisdiction) -> RosterAuthority | None:
    """The identity authority the deployment names for ``jurisdiction``, or None
    (no ``roster`` table: principals' attributes are the token's claims).

    Raises:
        ConfigError: ``roster_authority_key_invalid``, or the development key
            file is unreadable (``key_file_unreadable``).
    """
    settings = jurisdiction.roster
    if settings is None:
        return None
    keys = list(settings.authority_keys)
    if settings.authority_key_file is not None and settings.authority_key_file.exists():
        keys.append(read_signer(settings.authority_key_file).verifier().key_string)
    return RosterAuthority.from_key_strings(jurisdiction.code, keys)


def create_development_authority_key(path: Path, jurisdiction: str) -> Signer:
    """DEVELOPMENT AND DEMO ONLY: create an identity authority key (0600) at ``path``.

    Raises:
        ConfigError: ``key_file_exists``.
    """
    signer = Signer.generate(f"{jurisdiction}-identity-authority")
    make_dirs(path.parent)  # never writable by others, whatever the umask
    write_key(path, signer.key_string)
    return signer


def publish_roster(store: ObjectWriter, roster: Roster) -> str:
    """Write the document at ``rosters/sha256-<hex>.json``; returns the path.

    Raises:
        Unavailable: the storage refused the write.
    """
    path = roster_path(roster.digest)
    store.write_object(path, roster.document)
    return path


def roster_entry(signature: RosterSignature, now: float) -> bytes:
    """The canonical ``roster`` entry of a signed version, at time ``now``."""
    return encode_entry("roster", now, signature.entry_body())
