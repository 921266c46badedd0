"""What each party of a jurisdiction may hold of its log (issue 12, item 2).

The log operator's sequencer process alone holds the log key
(``[jurisdictions.X.sequencer].key_file``).  Everyone else holds the log's
verifier key (``log.vkey_file``) to read it, and appenders (gateway workers,
the release tooling, the key custodian) hold only their own append
credential (``log.sequencer.*credential_file``).  This module is the one place
that reads those files for a jurisdiction:

* :func:`log_verifier`: the log's verifier key (from ``vkey_file``, else
  derived from ``key_file``), checked against the configured origin;
* :func:`log_signer`: the log key, for a writer running the sequencer in
  process (only when no sequencer service is named);
* :func:`refuse_gateway_log_key`: outside the development profile a gateway
  whose configuration names a log key refuses to start
  (``gateway_holds_log_key``);
* :func:`remote_appender`: a :class:`~bordergate.tlog.remote.RemoteSequencer`
  with one credential, stamping each entry with its id
  (:class:`~bordergate.appender.AttributedLog`);
* :func:`provision_sequencer`: ``gateway init``'s part: the log key and
  verifier key, each named credential file, and the sequencer's credential list.

This module must never send a log key anywhere, nor let a gateway outside the
development profile read one.
"""

from __future__ import annotations

import re
from pathlib import Path

from bordergate.appender import AttributedLog
from bordergate.config import Jurisdiction
from bordergate.durable import replace_file
from bordergate.errors import ConfigError, VerificationError
from bordergate.profile import Profile
from bordergate.tlog.cosignature import CosignatureVerifier
from bordergate.tlog.credentials import (
    AppendCredential,
    parse_credential_list,
    read_credential,
)
from bordergate.tlog.logdir import make_dirs, read_signer, write_key, write_public
from bordergate.tlog.note import Ed25519Verifier, Signer

__all__ = [
    "log_signer",
    "log_verifier",
    "provision_sequencer",
    "read_pseudonym_secret",
    "refuse_gateway_log_key",
    "remote_appender",
    "witness_cosigners",
]


def read_pseudonym_secret(path: Path) -> bytes:
    """The per-log pseudonym secret (hex text, at least 32 bytes).

    Raises:
        ConfigError: ``pseudonym_secret_unreadable`` or ``pseudonym_secret_invalid``.
    """
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read pseudonym secret {path}: {exc.strerror}",
                          code="pseudonym_secret_unreadable") from exc
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 32:
        raise ConfigError(f"{path}: a pseudonym secret is at least 32 bytes of hex",
                          code="pseudonym_secret_invalid")
    return secret


def log_verifier(j: Jurisdiction) -> Ed25519Verifier:
    """The log's verifier key, for the configured origin.

    Raises:
        ConfigError: ``log_vkey_unreadable``, ``log_vkey_invalid`` or
            ``log_origin_mismatch``.
    """
    log = j.log
    if log.vkey_file is None:
        return log_signer(j).verifier()
    try:
        text = log.vkey_file.read_text().strip()
    except OSError as e:
        raise ConfigError(f"cannot read the log's verifier key {log.vkey_file}: {e.strerror}",
                          code="log_vkey_unreadable") from None
    try:
        verifier = Ed25519Verifier.from_key_string(text)
    except Exception as e:  # VerificationError or ValueError: the file is not a key
        raise ConfigError(f"{log.vkey_file} is not a log verifier key: {e}",
                          code="log_vkey_invalid") from None
    if verifier.name != log.origin:
        raise ConfigError(f"{log.vkey_file} verifies {verifier.name!r}, not the configured "
                          f"origin {log.origin!r}", code="log_origin_mismatch")
    return verifier


def witness_cosigners(j: Jurisdiction) -> list[CosignatureVerifier]:
    """The cosignature keys of the witnesses the deployment file names for ``j``'s log
    (what a reader counts its quorum of cosignatures with).

    Raises:
        ConfigError: ``witness_key_invalid``.
    """
    try:
        return [CosignatureVerifier.from_key_string(w.vkey) for w in j.log.witnesses]
    except (VerificationError, ValueError) as e:
        raise ConfigError(f"jurisdictions.{j.code}.log.witnesses: {e}",
                          code="witness_key_invalid") from None


def log_signer(j: Jurisdiction, key_file: Path | None = None) -> Signer:
    """The log key (``key_file``, default ``log.key_file``), for the configured origin.

    Raises:
        ConfigError: no key file named (``log_key_missing``), unreadable, or
            signing for another origin (``log_origin_mismatch``).
    """
    path = key_file or j.log.key_file
    if path is None:
        raise ConfigError(f"jurisdictions.{j.code}: no log key is named here (the log's "
                          "sequencer process holds it): name its sequencer service in "
                          "log.sequencer", code="log_key_missing")
    signer = read_signer(path)
    if signer.name != j.log.origin:
        raise ConfigError(f"{path} signs for {signer.name!r}, not the configured "
                          f"origin {j.log.origin!r}", code="log_origin_mismatch")
    return signer


def refuse_gateway_log_key(profile: Profile, j: Jurisdiction) -> None:
    """A gateway holds an append credential, never the log key (outside development).

    Raises:
        ConfigError: ``gateway_holds_log_key``: ``log.key_file`` is named and the
            profile is not development; or ``sequencer_required``: no sequencer
            service is named outside development.
    """
    if profile is Profile.DEVELOPMENT:
        return
    if j.log.key_file is not None:
        raise ConfigError(
            f"jurisdictions.{j.code}.log.key_file: a gateway never holds the log key under "
            f"the {profile.value} profile; the log's sequencer process holds it "
            f"([jurisdictions.{j.code}.sequencer].key_file) and the gateway appends with its "
            "credential (log.sequencer.credential_file)", code="gateway_holds_log_key")
    if j.log.sequencer is None:
        raise ConfigError(f"jurisdictions.{j.code}.log.sequencer: the {profile.value} profile "
                          "needs the log's sequencer service", code="sequencer_required")


def remote_appender(j: Jurisdiction, credential_file: Path) -> AttributedLog:
    """The client of ``j``'s sequencer service with the credential in ``credential_file``.

    Raises:
        ConfigError: no sequencer service named, or the credential or
            verifier key is unreadable.
    """
    from bordergate.tlog.remote import RemoteSequencer

    if j.log.sequencer is None:
        raise ConfigError(f"jurisdictions.{j.code}.log.sequencer is not set",
                          code="sequencer_required")
    credential = read_credential(credential_file)
    remote = RemoteSequencer(j.log.sequencer.url, credential.token, log_verifier(j))
    return AttributedLog(remote, credential.id)


def provision_sequencer(j: Jurisdiction) -> list[str]:
    """Create the log key, verifier key, credentials and credential list ``j`` names
    and lacks (idempotent); one line per action.

    The log key goes to ``[sequencer].key_file`` (else ``log.key_file``); each
    credential's id is its file name without the extension (``us-gw-1.cred``
    gives ``us-gw-1``) and is added to the sequencer's credential list.

    Raises:
        ConfigError: a credential file name is not a valid id, or the list is malformed.
    """
    done: list[str] = []
    key_file = j.sequencer.key_file if j.sequencer is not None else j.log.key_file
    if key_file is not None and not key_file.exists():
        make_dirs(key_file.parent)
        write_key(key_file, Signer.generate(j.log.origin).key_string)
        done.append(f"{j.code}: log signing key {key_file}")
    if j.log.vkey_file is not None and not j.log.vkey_file.exists() and key_file is not None:
        write_public(j.log.vkey_file, log_signer(j, key_file).verifier().key_string + "\n")
        done.append(f"{j.code}: log verifier key {j.log.vkey_file}")
    if j.log.sequencer is None or j.sequencer is None:
        return done
    listed = j.sequencer.credentials_file
    text = listed.read_text() if listed.exists() else ""
    parsed = parse_credential_list(text)
    known = parsed.ids
    for path, role in _appender_roles(j):
        credential = read_credential(path) if path.exists() else _issue(path)
        if not path.exists():
            make_dirs(path.parent)
            write_key(path, credential.token)
            done.append(f"{j.code}: append credential {credential.id} ({path})")
        if credential.id not in known:
            text += credential.list_line_as(role) + "\n"
            known |= {credential.id}
        elif parsed.role(credential.id) is None:  # a list written before roles
            text = re.sub(rf"(?m)^({re.escape(credential.id)} sha256:[0-9a-f]{{64}})[ \t]*$",
                          rf"\1 {role}", text)
            done.append(f"{j.code}: append credential {credential.id} listed as {role}")
    make_dirs(listed.parent)
    if not listed.exists() or text != listed.read_text():
        # the operator's own, replaced whole (a crash never leaves a cut list)
        replace_file(listed, text.encode("utf-8"), mode=0o600)
    return done


def _appender_roles(j: Jurisdiction) -> list[tuple[Path, str]]:
    """Each append credential file the deployment names, with the role its appender
    has in the log operator's list (``bordergate.appender.ROLE_TYPES``)."""
    assert j.log.sequencer is not None
    client = j.log.sequencer
    named = [(client.credential_file, "gateway"), (client.release_credential_file, "release"),
             (client.custodian_credential_file, "custodian")]
    if j.key_service is not None:  # its key-access entries, with its own credential
        named.append((j.key_service.append_credential_file, "key-service"))
    return [(path, role) for path, role in named if path is not None]


def _issue(path: Path) -> AppendCredential:
    try:
        return AppendCredential.issue(path.stem)
    except ValueError:
        raise ConfigError(f"{path}: an append credential file is named after its id "
                          "([a-z0-9][a-z0-9_-]*, e.g. us-gw-1.cred)",
                          code="credential_name_invalid") from None

