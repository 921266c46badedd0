"""TEST-ONLY deployments of three jurisdictions (us, eu, cn) with fixed-seed keys.

Every key here (issuer keys, log signing keys, receipt keys, pseudonym secrets) is derived
from a fixed seed and is for the test suite only; never use them anywhere else.
Key-encryption keys are created by ``provision`` in the temporary directory.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bordergate.config import Deployment, load_config
from bordergate.gateway.auth import TokenIssuer
from bordergate.gateway.startup import provision
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.policy.entities import Principal
from bordergate.tlog.note import Signer

CODES = ("us", "eu", "cn")
# Budgets large enough that no test but the privacy tests runs out of them.
PRIVACY = ("epsilon_per_export = 1.0\ndelta_exponent = 6\nprincipal_budget = 1000.0\n"
           "dataset_budget = 1000.0\n")


def _seed(label: str) -> bytes:
    return hashlib.sha256(b"bordergate TEST-ONLY seed " + label.encode()).digest()


def issuer_key(code: str) -> ed25519.Ed25519PrivateKey:
    """TEST-ONLY issuer key of ``code``."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(_seed(f"issuer {code}"))


def receipt_signer(code: str) -> Signer:
    """TEST-ONLY receipt key of ``code``'s gateway (registered in the deployment file)."""
    return Signer.from_seed(f"{code}.gateway-receipts-TEST-ONLY", _seed(f"receipts {code}"))


def issuer_name(code: str) -> str:
    return f"https://issuer.{code}.test"


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never handed out before in this test process (the
    kernel may give the same ephemeral port to two binds in a row: two jurisdictions of
    one deployment once got the same listen port)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def write_bundle(target: Path, *, k_min: int) -> Path:
    """A copy of the packaged policy bundle whose exports.toml says ``k_min`` (TEST-ONLY)."""
    shutil.copytree(DEFAULT_BUNDLE_PATH, target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "exports.toml").write_text(f"k_min = {k_min}\n")
    return target


def write_deployment(root: Path, *, k_min: int | None = None, max_body: int = 4096,
                     privacy: str = PRIVACY) -> Path:
    """Write and provision a deployment under ``root``; returns the config path.

    ``k_min`` is that of a copied policy bundle (None: the packaged bundle itself);
    ``privacy`` is the deployment's ``[privacy]`` table.
    """
    bundle = "" if k_min is None else \
        f'policy_bundle = "{write_bundle(root / "policy", k_min=k_min).name}"\n'
    parts = [f'[deployment]\nname = "test"\nprofile = "development"\n{bundle}',
             f"[limits]\nmax_body_bytes = {max_body}\nmax_approval_seconds = 86400\n",
             f"[privacy]\n{privacy}"]
    for code in CODES:
        d = root / code
        d.mkdir(parents=True, exist_ok=True)
        origin = f"{code}.bordergate.test/log"
        (d / "log.key").write_text(Signer.from_seed(origin, _seed(f"log {code}")).key_string)
        (d / "pseudonym.secret").write_text(_seed(f"pseudonym {code}").hex())
        (d / "receipt.key").write_text(receipt_signer(code).key_string)
        receipt_vkey = receipt_signer(code).verifier().key_string
        public = issuer_key(code).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        (d / "issuer.pub").write_bytes(public)
        port, admin_port = free_port(), free_port()
        parts.append(f"""
[jurisdictions.{code}]
custodian = "custodian of {code}"
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
store = "sqlite:{code}/records.db"
keys = {{ backend = "file", path = "{code}/kek.json" }}
receipts = {{ key_file = "{code}/receipt.key", public_keys = ["{receipt_vkey}"] }}
[jurisdictions.{code}.log]
storage = "{code}/log"
origin = "{origin}"
key_file = "{code}/log.key"
pseudonym_secret_file = "{code}/pseudonym.secret"
[jurisdictions.{code}.issuer]
issuer = "{issuer_name(code)}"
public_keys = ["{code}/issuer.pub"]
""")
    path = root / "bordergate.toml"
    path.write_text("\n".join(parts))
    provision(load_config(path))
    return path


@dataclass(frozen=True)
class Tokens:
    """Mints TEST-ONLY bearer tokens for any principal and gateway."""

    def token(self, principal: Principal, gateway: str, *, ttl: float = 3600,
              now: float | None = None) -> str:
        issuer = TokenIssuer(issuer_key(gateway), issuer_name(gateway))
        return issuer.issue(principal, audience=gateway,
                            now=time.time() if now is None else now, ttl=ttl)

    def header(self, principal: Principal, gateway: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(principal, gateway)}"}


def load(path: Path) -> Deployment:
    return load_config(path)


def second_worker(config: Path, code: str, *, name: str) -> Path:
    """A copy of the deployment file ``config`` beside it, as ``name``, in which
    jurisdiction ``code`` listens (public and admin) on fresh ports: a second worker of
    the same store and log (docs/scale-out.md)."""
    head, block = config.read_text().split(f"[jurisdictions.{code}]\n", 1)
    for key in ("listen", "admin_listen"):
        block = re.sub(rf'^{key} = "[^"]*"$', f'{key} = "127.0.0.1:{free_port()}"', block,
                       count=1, flags=re.MULTILINE)
    second = config.with_name(name)
    second.write_text(f"{head}[jurisdictions.{code}]\n{block}")
    return second


def two_workers_with_sequencer(root: Path) -> tuple[Path, Path, int]:
    """A deployment whose us jurisdiction appends through a sequencer service, and a
    second worker configuration of us (docs/scale-out.md), each worker with its own
    append credential (us-gw-1, us-gw-2): the first config's path, the second's,
    and the port the sequencer service must listen on."""
    config = write_deployment(root)
    port = free_port()
    use_sequencer_service(config, port)
    second = second_worker(config, "us", name="worker2.toml")
    second.write_text(second.read_text().replace("us/us-gw-1.cred", "us/us-gw-2.cred"))
    provision(load_config(second))
    return config, second, port


def use_sequencer_service(config: Path, port: int, code: str = "us") -> None:
    """Make the log operator's sequencer process (on ``port``) the only holder of
    ``code``'s log key: the gateway's log table names the verifier key and its
    credential (``CODE-gw-1``), the release and custodian credentials, and a
    ``[jurisdictions.CODE.sequencer]`` table holds the key and the credential
    list; then provision them (``gateway init``)."""
    text = config.read_text()
    text = text.replace(
        f'key_file = "{code}/log.key"\n',
        f'vkey_file = "{code}/log.vkey"\n'
        f'sequencer = {{ url = "http://127.0.0.1:{port}", '
        f'credential_file = "{code}/{code}-gw-1.cred", '
        f'release_credential_file = "{code}/{code}-release.cred", '
        f'custodian_credential_file = "{code}/{code}-custodian.cred" }}\n', 1)
    text = text.replace(
        f"[jurisdictions.{code}.issuer]\n",
        f"[jurisdictions.{code}.sequencer]\nlisten = \"127.0.0.1:{port}\"\n"
        f'key_file = "{code}/log.key"\ncredentials_file = "{code}/appenders.txt"\n'
        f"[jurisdictions.{code}.issuer]\n", 1)
    config.write_text(text)
    provision(load_config(config))


