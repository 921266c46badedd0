"""The witness quorum every writer of a deployment's log publishes with (promise 5).

A jurisdiction's log has several writers: the gateway's in-process sequencer,
``bordergate release propose/review``, the custodian's ``bordergate keys`` and
``gateway revoke-token`` (through :mod:`bordergate.custody_log`).  Each one
publishes checkpoints, so each must gather the same quorum of witness
cosignatures before it does; :func:`log_witnessing` is the one place that turns
the deployment's ``[log] witnesses``/``quorum`` into the sequencer's
:class:`~bordergate.tlog.witnessing.WitnessQuorum`.  Short of the quorum the
checkpoint is not published (the appended entries stay durable and are covered
by the next checkpoint that is: docs/log-durability.md).

A log without witnesses (quorum 0) is accepted only by the development and demo
profiles (``config.py`` refuses it under production); its writers publish
uncosigned checkpoints, say so once (:func:`unwitnessed_notice`), and every
audit reports such a checkpoint (``checkpoint_unwitnessed``).  This module must
never sign anything or decide what the log contains.
"""

from __future__ import annotations

from bordergate.config import LogSettings
from bordergate.tlog.witnessing import WitnessQuorum, witness_endpoint

__all__ = ["log_witnessing", "unwitnessed_notice"]


def log_witnessing(log: LogSettings) -> WitnessQuorum | None:
    """The configured witnesses and quorum, or None when the log has no witness.

    Raises:
        ConfigError: a witness URL or key is invalid, or the quorum does not fit.
    """
    if not log.witnesses:
        return None
    return WitnessQuorum([witness_endpoint(w.url, w.vkey) for w in log.witnesses],
                         log.quorum)


def unwitnessed_notice(log: LogSettings) -> str | None:
    """What to tell the operator when ``log`` publishes without a witness quorum (else None)."""
    if log.quorum > 0:
        return None
    return (f"the log {log.origin} has no witness quorum (quorum 0: development and demo "
            "profiles only): its checkpoints are published without cosignatures and every "
            "audit reports them as checkpoint_unwitnessed")
