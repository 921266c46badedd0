"""The trusted-partner demo: three jurisdictions, their custodians, a parent abroad.

``bordergate demo --data DIR`` (what ``make demo`` runs) builds a deployment on
embedded defaults (SQLite stores, file logs, loopback gateways) for ``us``,
``eu`` and ``cn`` (the parent company's home), then drives it from outside, the
way its users would: the CLI for provisioning and releases, HTTP for data.

1. provision keys, logs and stores; make two release reviewers per custodian;
   start two witnesses, each its own process with its own key and state, run
   by independent parties (the auditor's and a monitor's): every log publishes
   a checkpoint only once both cosigned it (quorum 2), and the auditor trusts
   exactly these two;
2. propose the installed release in each log and have both reviewers approve
   it (``cn`` is deliberately started ``--unreviewed``: a finding);
   then migrate a small legacy global database into the three homes
   (``bordergate migrate``: generate, plan, run, verify; docs/migration.md);
3. start one gateway process per jurisdiction;
4. seed a short-video dataset (Faker, fixed seed) through each home gateway;
5. play the scenario: local staff at work, the parent's engineer abroad asking
   for public, protected and restricted data, a Lockbox-style approval granted
   by two custodian approvers (each signing with their own key, made at first
   run, demo-only), a k-anonymous export, an erasure; then inject a
   bad actor: a compromised ``us`` gateway that logs an approval as granted
   after only one approver (the real gateway never does: a finding);
6. audit every log and write the report;
7. print a tour: what to run as each principal and what each will see.

Every key made here is for the demo only (``DIR`` is marked as demo data).
This module must never be imported by the product: it only drives it.
"""

from __future__ import annotations

import base64
import concurrent.futures
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.table import Table

from bordergate.approval_statement import load_signing_key, sign_statement
from bordergate.client import GatewayClient
from bordergate.demo_ports import DemoPorts
from bordergate.durable import replace_file
from bordergate.errors import BordergateError, Unavailable
from bordergate.tlog.checkpoint import open_checkpoint
from bordergate.tlog.logdir import read_signer, write_key
from bordergate.tlog.note import Ed25519Verifier, Signer

__all__ = ["Demo", "run_demo"]

MARKER = ".bordergate-demo"
CODES = ("us", "eu", "cn")
CUSTODIANS = {
    "us": "US custodian (the trusted technology partner)",
    "eu": "EU custodian",
    "cn": "CN operator (the parent company's home)",
}
LOCAL_ORG = {"us": "ttus", "eu": "tteu", "cn": "parentco"}
COUNTRIES = {"us": "US", "eu": "DE", "cn": "CN"}
#: The witnesses, each run by a party independent of the custodians: the auditor's own
#: and a monitor's.  Quorum 2: neither the auditor nor the monitor has to trust the
#: other, and a log cannot publish past either one (availability traded for that).
WITNESSES = ("auditor-witness", "monitor-witness")
WITNESS_QUORUM = 2
#: Lifetime of the demo's tokens (seconds): short, like every issued token; the demo
#: mints fresh ones when half of it has passed (Demo.client).
DEMO_TOKEN_TTL = 900


def _bordergate() -> list[str]:
    script = Path(sys.executable).with_name("bordergate")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bordergate"]


@dataclass
class Principal:
    """A demo principal and the tokens its issuers gave it (by jurisdiction)."""

    id: str
    org: str
    org_kind: str
    location: str
    roles: tuple[str, ...] = ()
    tokens: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    minted: float = field(default_factory=time.time)

    def kind_in(self, code: str) -> str:
        """The org kind as ``code``'s issuer sees it: the parent is local at home."""
        return "local" if self.org == LOCAL_ORG[code] else self.org_kind


class Demo:
    """One run of the demo in ``data`` (see the module docstring)."""

    def __init__(self, data: Path, *, subjects: int = 3000, base_port: int = 8401,
                 console: Console | None = None) -> None:
        self.data = data.resolve()
        self.runtime: Path | None = None  # the built gateway runtime (build_runtime)
        self.subjects = subjects
        self.plan = DemoPorts(base_port)  # every port, checked free by run_demo first
        self.ports = self.plan.gateways
        self.urls = {c: f"http://127.0.0.1:{p}" for c, p in self.ports.items()}
        # the admin listeners (dashboard, /metrics): loopback, custodians and monitors only
        self.admin_urls = {c: f"http://127.0.0.1:{p}" for c, p in self.plan.admin.items()}
        #: wraps each process start so a stopping signal cannot fall between the
        #: start and its registration (``_running`` sets it; see ``_spawn``)
        self.spawning: Callable[[], AbstractContextManager[None]] = nullcontext
        self.config = self.data / "deployment.toml"
        self.console = console or Console()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.witness_procs: dict[str, subprocess.Popen[bytes]] = {}
        self.witness_ports = self.plan.witnesses
        self.witness_vkeys: dict[str, str] = {}
        self.sequencers: dict[str, subprocess.Popen[bytes]] = {}
        self.sequencer_ports = self.plan.sequencers
        # one key service per jurisdiction, the only holder of its KEKs (issue 13)
        self.key_services: dict[str, subprocess.Popen[bytes]] = {}
        self.key_service_ports = self.plan.key_services
        self.principals: dict[str, Principal] = {}
        self.records: dict[str, list[tuple[str, str, str]]] = {c: [] for c in CODES}
        self.facts: dict[str, Any] = {}

    # -- helpers --------------------------------------------------------------
    def say(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)

    def cli(self, *args: str, check: bool = True) -> str:
        """Run a ``bordergate`` command as a user would; return its stdout."""
        proc = subprocess.run([*_bordergate(), *args], capture_output=True, text=True,
                              timeout=300, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"bordergate {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout

    def _spawn(self, registry: dict[str, subprocess.Popen[bytes]], name: str, logfile: Path,
               argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start a long-lived demo process in its own session (its group is what
        ``stop`` signals) and register it before a stopping signal may act."""
        with self.spawning(), open(logfile, "wb") as out:
            registry[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                              start_new_session=True, env=env)

    # -- 1. provisioning --------------------------------------------------------
    def prepare(self) -> None:
        """Wipe an earlier demo run, write the deployment file, provision it."""
        if self.data.exists():
            if not (self.data / MARKER).exists() and any(self.data.iterdir()):
                raise RuntimeError(f"{self.data} is not empty and not a bordergate demo "
                                   "directory; refusing to overwrite it")
            kept = self._keep_runtime_cache()
            shutil.rmtree(self.data)
            self.data.mkdir(parents=True)
            if kept is not None:
                shutil.move(kept, self.data / "runtime-cache")
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / MARKER).write_text("demo data: every key here is for the demo only\n")
        reviewers: dict[str, list[tuple[str, str]]] = {}
        for code in CODES:
            reviewers[code] = []
            for name in ("alice", "bob"):
                key = self.data / "reviewers" / f"{code}-{name}.key"
                key.parent.mkdir(exist_ok=True)
                out = self.cli("release", "keygen", "--key-file", str(key),
                               "--name", f"{code}-{name}")
                reviewers[code].append((str(key), out.strip().splitlines()[-1]))
        self.reviewer_keys = {c: [k for k, _ in r] for c, r in reviewers.items()}
        self._witness_keys()
        self.config.write_text(self._deployment(reviewers))
        self.cli("gateway", "init", "--config", str(self.config))
        self.say(f"[bold]1.[/] deployment written to {self.config} and provisioned "
                 "(log keys, KEKs, stores, issuers, 2 reviewers per custodian)")

    def _deployment(self, reviewers: dict[str, list[tuple[str, str]]]) -> str:
        lines = ['# bordergate demo deployment (generated; every key is demo-only)',
                 "[deployment]", 'name = "bordergate demo: the trusted-partner arrangement"',
                 'profile = "demo"', ""]
        for code in CODES:
            d = f"data/{code}"
            revs = ", ".join(f'{{ name = "{code}-{n}", public_key = "{pk}" }}'
                             for n, (_, pk) in zip(("alice", "bob"), reviewers[code],
                                                   strict=True))
            lines += [
                f"[jurisdictions.{code}]",
                f'custodian = "{CUSTODIANS[code]}"',
                f'listen = "127.0.0.1:{self.ports[code]}"',
                f'public_url = "{self.urls[code]}"',
                f'admin_listen = "{self.admin_urls[code].removeprefix("http://")}"',
                f'store = "sqlite:{d}/records.db"',
                f'keys = {{ backend = "file", path = "{d}/kek.json" }}',
                *self._log_operator_lines(code, d),
                f'issuer = {{ issuer = "https://issuer.{code}.bordergate.example", '
                f'public_keys = ["{d}/issuer.pub"], private_key_file = "{d}/issuer.pem" }}',
                f"reviewers = [{revs}]",
                "required_approvals = 2",
                f'roster = {{ authority_key_file = "{d}/roster-authority.key" }}',
                "",
            ]
        return "\n".join(lines)

    # -- 1b. witnesses -----------------------------------------------------------------
    def _witness_keys(self) -> None:
        """Each witness party makes its own key (``bordergate witness init``)."""
        for name in WITNESSES:
            key = self.data / "witnesses" / f"{name}.key"
            key.parent.mkdir(exist_ok=True)
            out = self.cli("witness", "init", "--key-file", str(key), "--name", name)
            self.witness_vkeys[name] = out.strip().splitlines()[-1]

    def _witness_members(self) -> str:
        """The witness members of a log's table in the deployment file."""
        listed = ", ".join(f'{{ url = "http://127.0.0.1:{self.witness_ports[w]}", '
                           f'vkey = "{self.witness_vkeys[w]}" }}' for w in WITNESSES)
        return f", witnesses = [{listed}], quorum = {WITNESS_QUORUM}"

    def _witness_options(self) -> list[str]:
        """``--witness URL=VKEY ... --quorum N`` for ``bordergate log`` commands."""
        out = [a for w in WITNESSES for a in (
            "--witness", f"http://127.0.0.1:{self.witness_ports[w]}={self.witness_vkeys[w]}")]
        return [*out, "--quorum", str(WITNESS_QUORUM)]

    def start_witnesses(self) -> None:
        """One ``bordergate witness serve`` process per witness, trusting the three logs."""
        logs = self.data / "gateway-logs"
        logs.mkdir(exist_ok=True)
        trusted = [a for code in CODES for a in (
            "--log", f"{code}.bordergate.example/log="
            + (self.data / "data" / code / "log.vkey").read_text().strip())]
        for name in WITNESSES:
            self._spawn(self.witness_procs, name, logs / f"{name}.log", [
                *_bordergate(), "witness", "serve", "--key-file",
                str(self.data / "witnesses" / f"{name}.key"), "--state",
                str(self.data / "witnesses" / f"{name}.db"), "--port",
                str(self.witness_ports[name]), *trusted])
        for name in WITNESSES:
            _wait_listening(self.witness_procs[name], self.witness_ports[name],
                            logs / f"{name}.log")
        self.say("[bold]1.[/] witnesses up, each its own process and key: " + ", ".join(
            f"{w} :{self.witness_ports[w]}" for w in WITNESSES)
            + f"; every log publishes only with {WITNESS_QUORUM} cosignatures")

    def _stop_witnesses(self) -> None:
        """After the gateways (their last checkpoints need the witnesses)."""
        _stop_group(list(self.witness_procs.values()))
        self.witness_procs.clear()

    def _log_operator_lines(self, code: str, d: str) -> list[str]:
        """The log table of ``code`` and its sequencer process: the sequencer alone
        holds the log key; the gateway, the release tooling and the custodian each
        hold an append credential (issue 12 item 2; docs/scale-out.md)."""
        url = f"http://127.0.0.1:{self.sequencer_ports[code]}"
        return [
            f'log = {{ storage = "{d}/log", origin = "{code}.bordergate.example/log", '
            f'vkey_file = "{d}/log.vkey", pseudonym_secret_file = "{d}/pseudonym.secret", '
            f'sequencer = {{ url = "{url}", credential_file = "{d}/{code}-gw-1.cred", '
            f'release_credential_file = "{d}/{code}-release.cred", '
            f'custodian_credential_file = "{d}/{code}-custodian.cred" }}'
            f"{self._witness_members()} }}",
            f'sequencer = {{ listen = "{url.removeprefix("http://")}", '
            f'key_file = "{d}/log-operator/log.key", '
            f'credentials_file = "{d}/log-operator/appenders.txt" }}',
            f'key_service = {{ url = "http://127.0.0.1:{self.key_service_ports[code]}", '
            f'credential_file = "{d}/{code}-gw-1-keys.cred", '
            f'credentials_file = "{d}/key-service/gateways.txt", '
            f'append_credential_file = "{d}/{code}-keys.cred" }}',
        ]

    def start_sequencers(self) -> None:
        """One log operator process per jurisdiction, holding its log key."""
        logs = self.data / "gateway-logs"
        logs.mkdir(exist_ok=True)
        for code in CODES:
            self._spawn(self.sequencers, code, logs / f"{code}-sequencer.log", [
                *_bordergate(), "log", "sequencer", "--config", str(self.config),
                "--jurisdiction", code])
        for code in CODES:
            self._wait_sequencer(code, logs / f"{code}-sequencer.log")
        self.say("[bold]2.[/] log operators up (one sequencer process per log, the only "
                 "holder of its key): " + ", ".join(
                     f"{c} :{self.sequencer_ports[c]}" for c in CODES))

    def start_key_services(self) -> None:
        """One key service process per jurisdiction (``bordergate keys serve``): it alone
        opens the KEKs, and releases a data key only against a logged decision."""
        logs = self.data / "gateway-logs"
        for code in CODES:
            self._spawn(self.key_services, code, logs / f"{code}-keys.log", [
                *_bordergate(), "keys", "serve", "--config", str(self.config),
                "--jurisdiction", code])
        for code in CODES:
            _wait_listening(self.key_services[code], self.key_service_ports[code],
                            logs / f"{code}-keys.log")
        self.say("[bold]2b.[/] key services up (the only holders of the KEKs; a data key "
                 "only for a logged decision): " + ", ".join(
                     f"{c} :{self.key_service_ports[c]}" for c in CODES))

    def _wait_sequencer(self, code: str, logfile: Path) -> None:
        deadline = time.monotonic() + 60
        url = f"http://127.0.0.1:{self.sequencer_ports[code]}/checkpoint"
        while time.monotonic() < deadline:
            if self.sequencers[code].poll() is not None:
                raise RuntimeError(f"the {code} sequencer exited:\n"
                                   f"{logfile.read_text()[-3000:]}")
            try:
                r = httpx.get(url, timeout=1)
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if r.status_code == 200:
                self._check_ours(code, r.content, url)
                return
            time.sleep(0.2)
        raise RuntimeError(f"the {code} sequencer did not start: see {logfile}")

    def _check_ours(self, code: str, checkpoint: bytes, url: str) -> None:
        """The server at ``url`` serves this run's ``code`` log: its checkpoint verifies
        under the log key this run made (a stranger on the port cannot sign one).

        Raises:
            Unavailable: ``port_taken_by_stranger``, before anything is sent to it.
        """
        vkey = (self.data / "data" / code / "log.vkey").read_text().strip()
        try:
            open_checkpoint(checkpoint, Ed25519Verifier.from_key_string(vkey))
        except BordergateError as e:
            raise Unavailable(
                f"{url} is not this demo's {code} log ({e.code}): another program answers "
                f"on its port; stop it or move every port with --base-port N "
                f"({self.plan.describe()})", code="port_taken_by_stranger") from None

    # -- 2. releases ---------------------------------------------------------------
    def build_runtime(self) -> None:
        """Build (or reuse) the gateways' hash-locked runtime (promise 6, issue 13)."""
        from bordergate.errors import BordergateError
        from bordergate.releases.runtime_build import cached_runtime
        started = time.monotonic()
        try:
            self.runtime = cached_runtime(self.data / "runtime-cache").out  # kept by prepare()
        except BordergateError as e:
            self.runtime = None
            self.say(f"[red]runtime not built ({e.code}): gateways run unattested[/]")
            return
        self.say(f"[bold]1b.[/] gateway runtime ready in {self.runtime}/env "
                 f"({time.monotonic() - started:.0f} s; cached by its inputs)")

    def _keep_runtime_cache(self) -> Path | None:
        """Move the built runtime out of the way of the wipe (it takes minutes to build)."""
        cache = self.data / "runtime-cache"
        if not cache.is_dir():
            return None
        kept = self.data.with_name(self.data.name + ".runtime-cache")
        shutil.rmtree(kept, ignore_errors=True)
        shutil.move(cache, kept)
        return kept

    def _serve_command(self) -> list[str]:
        if self.runtime is None:
            return _bordergate()
        return [str(self.runtime / "env" / "bin" / "bordergate")]  # re-executes itself isolated

    def release(self) -> None:
        """Propose the installed release in us and eu and have both reviewers approve."""
        with_runtime = ["--runtime", str(self.runtime)] if self.runtime is not None else []
        for code in ("us", "eu"):
            out = self.cli("release", "propose", "--config", str(self.config),
                           "--jurisdiction", code, *with_runtime)
            index = out.split(" proposed at entry ")[1].split()[0]
            for key in self.reviewer_keys[code]:
                self.cli("release", "review", index, "--config", str(self.config),
                         "--jurisdiction", code, "--key-file", key, "--verdict", "approve",
                         "--note", "read the diff of every changed file and dependency")
        self.say("[bold]2.[/] release proposed and approved by 2 reviewers in us and eu "
                 "through the running sequencers; cn will start [red]--unreviewed[/] (a "
                 "finding the audit must show)")

    def publish_rosters(self) -> None:
        """Each jurisdiction's identity authority signs its roster (everyone who may
        read its data, as it vouches: the parent's engineer abroad is a covered person
        in us, 28 CFR 202.211) and its custodian publishes it before the gateways serve."""
        keys = {}
        (self.data / "approvers").mkdir(exist_ok=True)
        for who in ("carol", "dave"):  # approver keys (demo-only), listed in the us roster
            out = self.cli("approval", "keygen", "--key-file",
                           str(self.data / "approvers" / f"{who}.key"))
            keys[f"{who}@custodian-us"] = out.strip().splitlines()[-1]
        basis = {"us": "202.211(a)(4): primarily resident in a country of concern (cn), and "
                       "(a)(3): employed by parentco, an entity of a country of concern"}
        for code in CODES:
            principals = {p.id: {"org": p.org, "org_kind": p.kind_in(code),
                                 "location": p.location, "roles": list(p.roles),
                                 "approver_keys": [keys[p.id]] if p.id in keys else [],
                                 "covered_person": p.org == "parentco" and code in basis,
                                 "covered_person_basis": basis.get(code)
                                 if p.org == "parentco" else None} for p in self._people()}
            source = self.data / "rosters" / f"{code}.json"
            source.parent.mkdir(exist_ok=True)
            source.write_text(json.dumps({"jurisdiction": code, "serial": 1,
                                          "principals": principals}, indent=1))
            signed = source.with_suffix(".signed.json")
            self.cli("roster", "sign", str(source), "--key",
                     str(self.data / f"data/{code}/roster-authority.key"), "--out", str(signed))
            done = json.loads(self.cli("roster", "publish", str(signed), "--config",
                                       str(self.config), "--jurisdiction", code))
            self.facts.setdefault("rosters", {})[code] = done["roster"]
        self.say("[bold]2b.[/] each identity authority signed its roster of principals; "
                 "published beside each log, logged as a roster entry")

    # -- 2b. separating the legacy business (docs/migration.md) -----------------------
    def migrate_legacy(self, users: int = 150) -> None:
        """Before any gateway runs: migrate a small legacy global database into the
        three homes, delete it from the source, and verify (the audit shows it)."""
        source = f"sqlite:{self.data / 'legacy-global.db'}"
        self.cli("migrate", "generate", "--source", source, "--users", str(users))
        cfg = ("--source", source, "--config", str(self.config))
        self.cli("migrate", "plan", *cfg, "--out", str(self.data / "migration-plan.json"),
                 check=False)  # exit 1 would mean unmapped columns: run refuses then
        self.cli("migrate", "run", *cfg, "--batch-subjects", "50", "--no-progress")
        out = self.cli("migrate", "verify", *cfg, "--out",
                       str(self.data / "migration-verify.json"))
        self.facts["migration"] = {"legacy_source": source, "verify": out.strip().splitlines()}
        self.say(f"[bold]2b.[/] legacy global database ({users * 10:,} records) migrated into "
                 "us, eu and cn, deleted from the source and verified; dirty rows left in "
                 f"place and listed ({self.data / 'migration-plan.json'})")

    # -- 3. gateways -----------------------------------------------------------------
    def start(self) -> None:
        """One gateway process per jurisdiction; wait until each is healthy."""
        logs = self.data / "gateway-logs"
        logs.mkdir(exist_ok=True)
        for code in CODES:
            for_cn = ["--unreviewed"] if code == "cn" else []
            self._spawn(self.procs, code, logs / f"{code}.log", [
                *self._serve_command(), "gateway", "serve", "--config", str(self.config),
                "--jurisdiction", code, *for_cn], env=self._gateway_env())
        for code in CODES:
            self._wait_healthy(code, logs / f"{code}.log")
        self.say("[bold]3.[/] gateways up: " + ", ".join(
            f"{c} {self.urls[c]}" for c in CODES))

    def _gateway_env(self) -> dict[str, str]:
        # the dashboards show the last audit's findings (written at step 6)
        return {**os.environ, "BORDERGATE_AUDIT_REPORT": str(self.data / "report")}

    def _wait_healthy(self, code: str, logfile: Path) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            proc = self.procs[code]
            if proc.poll() is not None:
                raise RuntimeError(f"the {code} gateway exited:\n{logfile.read_text()[-3000:]}")
            try:
                r = httpx.get(self.urls[code] + "/healthz", timeout=1)
                if r.status_code == 200:  # and it is our gateway: before any token goes
                    url = self.urls[code] + "/v1/log/checkpoint"
                    self._check_ours(code, httpx.get(url, timeout=5).content, url)
                    return
                if r.status_code == 503:
                    raise RuntimeError(f"the {code} gateway refuses to serve: {r.text[:2000]}")
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the {code} gateway did not become healthy: see {logfile}")

    def stop(self) -> None:
        """Stop the gateways, the key services, then the sequencers they append
        through, then the witnesses (the sequencers' last checkpoints need them)."""
        for procs in (self.procs, self.key_services, self.sequencers):
            _stop_group(list(procs.values()))
            procs.clear()
        self._stop_witnesses()

    # -- principals --------------------------------------------------------------------
    @staticmethod
    def _people() -> list[Principal]:
        return [
            Principal("alice@ttus", "ttus", "local", "us", ("engineer",)),
            Principal("elena@tteu", "tteu", "local", "eu", ("engineer",)),
            Principal("wei@parentco", "parentco", "parent", "cn", ("engineer",)),
            Principal("carol@custodian-us", "usdsp", "custodian", "us", ("approver",)),
            Principal("dave@custodian-us", "usdsp", "custodian", "us", ("approver",)),
        ]

    def issue_tokens(self) -> None:
        """Principals of the local entities, the parent abroad and the custodians."""
        people = self._people()
        tokens = self.data / "tokens"
        tokens.mkdir(mode=0o700, exist_ok=True)
        for p in people:
            for code in CODES:
                token = self._mint(p, code)
                p.tokens[code] = token
                path = tokens / f"{p.id.split('@')[0]}.{code}.jwt"
                replace_file(path, (token + "\n").encode(), mode=0o600)
                p.files[code] = path
            self.principals[p.id.split("@")[0]] = p

    def _mint(self, p: Principal, code: str) -> str:
        """A fresh token of ``code``'s issuer for ``p`` (short-lived: DEMO_TOKEN_TTL)."""
        return self.cli(
            "principal", "issue", "--key-file", str(self.data / f"data/{code}/issuer.pem"),
            "--issuer", f"https://issuer.{code}.bordergate.example", "--audience", code,
            "--id", p.id, "--org", p.org, "--org-kind", p.kind_in(code),
            "--location", p.location, *[a for r in p.roles for a in ("--role", r)],
            "--ttl", str(DEMO_TOKEN_TTL)).strip().splitlines()[-1]

    def client(self, who: str, code: str) -> GatewayClient:
        p = self.principals[who]
        if time.time() - p.minted > DEMO_TOKEN_TTL / 2:  # short-lived: mint fresh ones
            p.tokens = {c: self._mint(p, c) for c in CODES}
            for c, path in p.files.items():
                replace_file(path, (p.tokens[c] + "\n").encode(), mode=0o600)
            p.minted = time.time()
        return GatewayClient(self.urls[code], p.tokens, gateways=self.urls)

    # -- 4. seeding ---------------------------------------------------------------------
    def seed(self) -> None:
        """A short-video dataset, written through each home gateway by local staff."""
        from faker import Faker
        fake = Faker()
        Faker.seed(2026)
        rnd = random.Random(2026)  # noqa: S311 (demo data, not secrets)
        staff = {"us": "alice", "eu": "elena", "cn": "wei"}
        per = max(1, self.subjects // len(CODES))
        started = time.monotonic()
        plans = [(code, self._subject_plan(fake, rnd, code, i))
                 for i in range(per) for code in CODES]
        local = threading.local()
        opened: list[GatewayClient] = []

        def write(item: tuple[str, list[tuple[str, dict[str, Any]]]]) -> None:
            code, plan = item
            clients: dict[str, GatewayClient] = local.__dict__.setdefault("clients", {})
            if code not in clients:
                clients[code] = self.client(staff[code], code)
                opened.append(clients[code])
            self._write_subject(clients[code], code, plan)
        pool = concurrent.futures.ThreadPoolExecutor(12)
        try:
            list(pool.map(write, plans))
        finally:  # a stop signal drops the writes not begun yet
            pool.shutdown(wait=True, cancel_futures=True)
            for c in opened:
                c.close()
        writes = sum(len(v) for v in self.records.values())
        self.say(f"[bold]4.[/] seeded {per * len(CODES):,} subjects and {writes:,} records "
                 f"through their home gateways in {time.monotonic() - started:.0f} s "
                 "(every write is a log entry)")

    @staticmethod
    def _subject_plan(fake: Any, rnd: random.Random, code: str, i: int
                      ) -> list[tuple[str, dict[str, Any]]]:
        handle = f"{fake.user_name()}{i}"[:32]
        ts = "2026-10-{:02d}T{:02d}:{:02d}:00Z"
        plan: list[tuple[str, dict[str, Any]]] = [
            ("users", {"handle": handle, "email": fake.email(), "phone": fake.phone_number()[:32],
                       "birth_date": fake.date_of_birth(minimum_age=16).isoformat(),
                       "country": COUNTRIES[code], "signup_ip": fake.ipv4(),
                       "device_id": fake.uuid4(), "created_at": ts.format(
                           rnd.randint(1, 28), rnd.randint(0, 23), rnd.randint(0, 59)),
                       "government_id": fake.ssn()}),
            ("profiles", {"display_name": fake.name()[:64], "bio": fake.sentence()[:500],
                          "language": rnd.choice(["en", "de", "zh", "es"]),
                          "private_account": rnd.random() < 0.2,
                          "gender": rnd.choice(["female", "male", "nonbinary"]),
                          "precise_location": f"{fake.latitude()},{fake.longitude()}"}),
            ("watch_history", {"video_id": f"v{rnd.randrange(10**6)}",
                               "watched_at": ts.format(rnd.randint(1, 28), rnd.randint(0, 23),
                                                       rnd.randint(0, 59)),
                               "watch_seconds": rnd.randint(1, 600),
                               "device_id": fake.uuid4(), "region": COUNTRIES[code]}),
        ]
        if rnd.random() < 0.5:
            plan.append(("payments", {
                "amount_minor": rnd.randint(99, 9999), "currency": "USD",
                "paid_at": ts.format(rnd.randint(1, 28), rnd.randint(0, 23), 0),
                "card_last4": f"{rnd.randrange(10000):04d}", "tax_id": fake.ssn()}))
        if rnd.random() < 0.5:
            plan.append(("messages", {"recipient": fake.user_name()[:64],
                                      "body": fake.sentence()[:4000],
                                      "sent_at": ts.format(rnd.randint(1, 28), 12, 0),
                                      "read": rnd.random() < 0.5}))
        return plan

    def _write_subject(self, c: GatewayClient, code: str,
                       plan: Sequence[tuple[str, dict[str, Any]]]) -> None:
        subject = c.mint_subject()
        for n, (collection, values) in enumerate(plan):
            record = f"{collection[:1]}{n}-{subject.split('-', 1)[1][:12]}"
            c.write(collection, record, subject, values, purpose="operations")
            self.records[code].append((collection, record, subject))

    # -- 5. the scenario ---------------------------------------------------------------------
    def scenario(self) -> None:
        """What each principal sees; the injected bad actor; approvals; export; erasure."""
        us_user = next(r for r in self.records["us"] if r[0] == "users")
        us_watch = next(r for r in self.records["us"] if r[0] == "watch_history")
        self.facts.update(us_user=us_user, us_watch=us_watch)
        with self.client("alice", "us") as c:
            r = c.read("users", us_user[1], purpose="customer_support")
            self.facts["alice"] = (sorted(r.fields), r.log_index)
        with self.client("wei", "us") as c:
            r = c.read("users", us_user[1], purpose="interoperability")
            self.facts["wei_public"] = (sorted(r.fields), sorted(w["field"] for w in r.withheld))
            # the injected bad actor: protected and restricted reads without approval
            for fields, purpose in ((["email", "phone"], "customer_support"),
                                    (["government_id"], "trust_and_safety")):
                try:
                    c.read("users", us_user[1], purpose=purpose, fields=fields)
                except BordergateError as e:
                    self.facts.setdefault("wei_denied", []).append((fields, e.code))
            # via the eu gateway: the 421 names the subject's home, the client follows it
            r = self.client("wei", "eu").read("users", us_user[1], purpose="interoperability",
                                              subject=us_user[2])
            self.facts["redirect"] = r.gateway
        self._approvals(us_watch)
        with self.client("alice", "us") as c:
            self.facts["export"] = c.export("watch_history", "region")
        victim = self.records["eu"][-1][2]
        with self.client("elena", "eu") as c:
            self.facts["erased"] = (victim, c.erase(victim, purpose="erasure"))
        self.say("[bold]5.[/] scenario played: local reads, the parent's engineer abroad, "
                 "an approval by two custodian approvers, export, erasure")

    def forge_single_grant(self) -> None:
        """The injected bad actor: a compromised us gateway logs a one-approver grant.

        The forged ``approval-grant`` entry (state granted, approvals 1, carrying
        carol's one real signed statement) is appended through the log's
        sequencer with the us gateway's own append credential, as a compromised
        gateway could (it never held the log key); the witnesses cosign it, since
        they vouch that the log only grew, not for what it holds.  The audit must
        find it.
        """
        from bordergate.entries import encode_entry
        from bordergate.policy import default_bundle
        approval = self.facts["lone_approval"][0]
        carol = self.principals["carol"]
        body = {"approval": approval, "state": "granted", "approvals": 1,
                "approver": {"id": carol.id, "org": carol.org, "org_kind": "custodian",
                             "location": carol.location, "roles": list(carol.roles)},
                "bundle": default_bundle().digest, "gateway": "us", "release": None,
                "roster": self.facts["rosters"]["us"],
                "statement": self.facts["lone_statement"]}
        entry = encode_entry("approval-grant", time.time(), body)
        self.facts["forged_index"] = self._append_as_gateway("us", entry)
        self.say(f"    injected: a forged one-approver grant at us log index "
                 f"{self.facts['forged_index']}")

    def _append_as_gateway(self, code: str, entry: bytes) -> int:
        """Append ``entry`` with ``code``'s gateway credential and wait until a published
        checkpoint covers it (the audit that follows reads published checkpoints only:
        without the wait, the log operator's next publication could come after the
        audit had read the log, and the forged entry go unseen); its index."""
        import asyncio

        from bordergate.config import load_config
        from bordergate.log_access import remote_appender
        j = load_config(self.config).jurisdiction(code)
        assert j.log.sequencer is not None

        async def send() -> int:
            log = remote_appender(j, j.log.sequencer.credential_file)  # type: ignore[union-attr]
            try:
                index = int(await log.append_many([entry]))
                await log.publish(60.0)  # checked to cover the entry
                return index
            finally:
                await log.aclose()
        return asyncio.run(send())

    def approver_key(self, who: str) -> Ed25519PrivateKey:
        """An approver's own signing key (demo-only, made at step 2b)."""
        return load_signing_key(self.data / "approvers" / f"{who}.key")

    def _approvals(self, us_watch: tuple[str, str, str]) -> None:
        with self.client("wei", "us") as wei:
            good = wei.request_approval(purpose="customer_support", reason="ticket",
                                        collections=["watch_history"], classes=["protected"],
                                        max_duration_s=3600)
            for approver in ("carol", "dave"):  # each signs with their own key
                with self.client(approver, "us") as a:
                    a.grant(good["id"], self.approver_key(approver))
            r = wei.read("watch_history", us_watch[1], purpose="customer_support",
                         approval=good["id"])
            self.facts["approved_read"] = (sorted(r.fields), r.log_index)
            # an approval no custodian granted yet: using it is refused; the bad
            # actor injected later claims it was granted by one approver
            lone = wei.request_approval(purpose="customer_support", reason="ticket",
                                        collections=["users"], classes=["protected"],
                                        max_duration_s=3600)
            with self.client("carol", "us") as carol:  # carol's one signed grant of it
                self.facts["lone_statement"] = sign_statement(carol.statement_for(
                    lone["id"], "grant"), self.approver_key("carol")).to_json()
            try:
                wei.read("users", self.facts["us_user"][1], purpose="customer_support",
                         fields=["email"], approval=lone["id"])
            except BordergateError as e:
                self.facts["lone_approval"] = (lone["id"], e.code)
            self.facts["approval"] = good["id"]

    # -- 6. audit ---------------------------------------------------------------------------
    def audit(self) -> Path | None:
        """Audit every log (``bordergate audit run``) and return the report path."""
        auditor = self.data / "auditor.toml"
        if not _has_audit_run():
            self.say("[bold]6.[/] [yellow]audit skipped: this build has no "
                     "`bordergate audit run` yet[/]")
            return None
        self._auditor_config(auditor)
        report = self.data / "report"
        key = self.data / "auditor.key"  # the auditor's signing key (issue 14, item 5)
        if not key.exists():
            write_key(key, Signer.generate("demo-monitor").key_string)
        proc = subprocess.run([*_bordergate(), "audit", "run", "--config", str(auditor),
                               "--state", str(self.data / "audit-state"),
                               "--report", str(report), "--sign-key", str(key)],
                              capture_output=True, text=True, timeout=600, check=False)
        self.facts["audit_output"] = proc.stdout + proc.stderr
        self.facts["auditor_vkey"] = read_signer(key).verifier().key_string
        self.say(f"[bold]6.[/] audit of all three logs written to {report}/report.html "
                 f"(exit {proc.returncode}), signed: bordergate audit verify-report {report} "
                 f"--auditor-key {self.facts['auditor_vkey']}")
        return report

    def _auditor_config(self, path: Path) -> None:
        lines = ["# auditor configuration for the demo's three logs", "[auditor]",
                 'name = "demo monitor"',
                 f'separation = "{self.data / "migration-verify.json"}"', ""]
        for code in CODES:
            d = self.data / "data" / code
            vkey = (d / "log.vkey").read_text().strip()
            text = (self.config.read_text().split(f"[jurisdictions.{code}]")[1]
                    .split("[jurisdictions.")[0])
            reviewers = text.split("reviewers = ")[1].splitlines()[0]
            witnesses = ", ".join(f'"{self.witness_vkeys[w]}"' for w in WITNESSES)
            authority = read_signer(d / "roster-authority.key").verifier().key_string
            lines += [f"[logs.{code}]", f'location = "{d / "log"}"', f'vkey = "{vkey}"',
                      f"witnesses = [{witnesses}]", f"quorum = {WITNESS_QUORUM}",
                      f'roster_authority = ["{authority}"]',
                      f"reviewers = {reviewers}", "required_approvals = 2",
                      f'approvers = ["carol@custodian-{code}", "dave@custodian-{code}"]',
                      f'appenders = {{ "{code}-gw-1" = "gateway", "{code}-release" = "release", '
                      f'"{code}-custodian" = "custodian", "{code}-keys" = "key-service" }}',
                      ""]
        path.write_text("\n".join(lines))

    # -- 7. the tour ---------------------------------------------------------------------------
    def tour(self, report: Path | None) -> None:
        """Print what to look at and what to run as each principal."""
        f = self.facts
        user = f["us_user"]
        t = Table(title="who sees what (a US user's account record)", show_lines=False)
        t.add_column("principal")
        t.add_column("asked")
        t.add_column("got")
        t.add_row("alice (US local staff, in us)", "all fields, customer_support",
                  ", ".join(f["alice"][0]))
        t.add_row("wei (parent company, in cn)", "all fields, interoperability",
                  ", ".join(f["wei_public"][0]) + "  [dim](withheld: "
                  + ", ".join(f["wei_public"][1]) + ")[/]")
        for fields, code in f.get("wei_denied", []):
            t.add_row("wei (parent, in cn), no approval", ", ".join(fields), f"[red]{code}[/]")
        t.add_row("wei with approval by 2 custodians", "watch_history (protected)",
                  ", ".join(f["approved_read"][0]))
        if "lone_approval" in f:
            t.add_row("wei with an approval nobody granted", "users.email",
                      f"[red]{f['lone_approval'][1]}[/]")
        self.console.print(t)
        tok = {who: p.files for who, p in self.principals.items()}
        alice_jti = _jti(self.principals["alice"].tokens["us"])
        script = _bordergate()[0]
        bg = os.path.relpath(script) if script.startswith(os.getcwd() + os.sep) else \
            " ".join(_bordergate())
        self.say(f"""
[bold]Where to look[/]
  gateways     {self.urls['us']}  {self.urls['eu']}  {self.urls['cn']}
  dashboards   {self.admin_urls['us']}/dashboard/  (admin listener, one per gateway:
               sign in at {self.admin_urls['us']}/login with a custodian's token,
               e.g. {tok['carol']['us']}; /metrics there too)
  logs         {self.data}/data/<us|eu|cn>/log   (C2SP tlog-tiles; checkpoint at /v1/log/checkpoint)
  witnesses    {", ".join(f"{w} :{p}" for w, p in self.witness_ports.items())}  (own processes
               and keys; each checkpoint carries both cosignatures, the audit names them)
  report       {report / 'report.html' if report else '(no audit in this build)'}
  tokens       {self.data}/tokens/<who>.<jurisdiction>.jwt (demo-only, mode 0600, valid 15 min;
               mint fresh ones with `bordergate principal issue`)

[bold]Try it[/]  (every answer names the log entry that recorded the decision)
  # US local staff reads a US user's account:
  curl -s -H "Authorization: Bearer $(cat {tok['alice']['us']})" \\
    '{self.urls['us']}/v1/users/{user[1]}?purpose=customer_support'
  # the parent's engineer in cn asks for the same record: public fields only
  curl -s -H "Authorization: Bearer $(cat {tok['wei']['us']})" \\
    '{self.urls['us']}/v1/users/{user[1]}?purpose=interoperability'
  # ...through the wrong gateway: 421 with the home gateway's address
  curl -si -H "Authorization: Bearer $(cat {tok['wei']['eu']})" \\
    '{self.urls['eu']}/v1/users/{user[1]}?purpose=interoperability&subject={user[2]}' | head -1
  # carol (a US custodian) revokes alice's US token: a token-revoke log entry; alice's
  # next request gets 401 token_revoked (mint her a fresh one with `principal issue`)
  curl -s -X POST -H "Authorization: Bearer $(cat {tok['carol']['us']})" \\
    -H 'content-type: application/json' -d '{{"jti": "{alice_jti}"}}' \\
    '{self.urls['us']}/v1/tokens/revoke'
  # verify the US log and prove an entry, as an auditor would
  {bg} log verify {self.data}/data/us/log --vkey "$(cat {self.data}/log-vkeys/us)"
  {bg} log prove {self.data}/data/us/log --index {f['alice'][1]}
  {bg} release status --config {self.config} --jurisdiction us
  {bg} audit run --config {self.data}/auditor.toml --state {self.data}/audit-state \\
    --report {self.data}/report
""")

    def write_vkeys(self) -> None:
        out = self.data / "log-vkeys"
        out.mkdir(exist_ok=True)
        for code in CODES:
            key = (self.data / "data" / code / "log.vkey").read_text().strip()
            (out / code).write_text(key + "\n")


def _jti(token: str) -> str:
    """The ``jti`` claim of a token this demo minted (read, not verified)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


def _has_audit_run() -> bool:
    # `audit run` is a deferred command of bordergate.cli, registered by module name
    return importlib.util.find_spec("bordergate.audit.run_command") is not None


def _stop_group(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group this demo started, then SIGKILL what is left.

    The whole group, even when its leader already exited: a process it started
    (a re-executed runtime) must not outlive it.
    """
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    for proc in procs:
        with suppress(subprocess.TimeoutExpired):
            proc.wait(15)
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):  # empty: everything in it exited
        os.killpg(proc.pid, signum)


def _wait_listening(proc: subprocess.Popen[bytes], port: int, logfile: Path) -> None:
    """Wait until ``proc`` accepts connections on ``port``."""
    import socket
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"a demo process exited:\n{logfile.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"a demo process did not listen on {port}: see {logfile}")


#: The signals that stop a demo (and everything it started): Ctrl-C, ``kill``, a
#: closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stopping:
    """Turns a stop signal into ``SystemExit(128 + signal)``, except while a process
    is being started and registered (``deferred``): then the exit waits for it."""

    def __init__(self) -> None:
        self.deferring = 0
        self.pending: int | None = None

    def handler(self, signum: int, _frame: object) -> None:
        if self.deferring:
            self.pending = signum
            return
        raise SystemExit(128 + signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self.deferring += 1
        try:
            yield
        finally:
            self.deferring -= 1
            if not self.deferring and self.pending is not None:
                raise SystemExit(128 + self.pending)


@contextmanager
def _running(demo: Demo) -> Iterator[Demo]:
    """Stop every process the demo started on leaving: on an error, on Ctrl-C (SIGINT),
    SIGTERM and SIGHUP; a second signal does not interrupt the stopping."""
    stopping = _Stopping()
    previous = {s: signal.signal(s, stopping.handler) for s in STOP_SIGNALS}
    demo.spawning = stopping.deferred
    try:
        yield demo
    finally:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        try:
            demo.stop()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def run_demo(data: Path, *, subjects: int = 3000, serve: bool = True,
             base_port: int = 8401, wait: Callable[[], None] | None = None) -> Demo:
    """Run every step; keep serving until a stop signal when ``serve``.

    Raises:
        PortTaken: a port of the demo is in use (``port_in_use``); nothing started.
        Unavailable: a stranger answers on a port once the demo started
            (``port_taken_by_stranger``); what was started is stopped.
        SystemExit: ``128 + signal`` on SIGINT, SIGTERM or SIGHUP, everything stopped.
    """
    demo = Demo(data, subjects=subjects, base_port=base_port)
    demo.plan.check_free()
    with _running(demo):
        demo.prepare()
        demo.write_vkeys()
        demo.build_runtime()
        demo.start_witnesses()
        demo.start_sequencers()
        demo.start_key_services()
        demo.release()
        demo.publish_rosters()
        demo.migrate_legacy()
        demo.start()
        demo.issue_tokens()
        demo.seed()
        demo.scenario()
        demo.forge_single_grant()
        report = demo.audit()
        demo.tour(report)
        (demo.data / "facts.json").write_text(json.dumps(
            {k: v for k, v in demo.facts.items() if k != "audit_output"}, indent=2,
            default=str))
        if serve:
            demo.say("[bold green]serving; press Ctrl-C to stop[/]")
            (wait or _forever)()
    return demo


def _forever() -> None:
    while True:
        time.sleep(3600)
