"""The trusted-partner demo: three jurisdictions, their custodians, a parent abroad.

``bordergate demo --data DIR`` (what ``make demo`` runs) builds a deployment on
embedded defaults (SQLite stores, file logs, loopback gateways) for ``us``,
``eu`` and ``cn`` (the parent company's home), then drives it from outside, the
way its users would: the CLI for provisioning and releases, HTTP for data.

1. provision keys, logs and stores; make two release reviewers per custodian;
2. propose the installed release in each log and have both reviewers approve
   it (``cn`` is deliberately started ``--unreviewed``: a finding);
   then migrate a small legacy global database into the three homes
   (``bordergate migrate``: generate, plan, run, verify; docs/migration.md);
3. start one gateway process per jurisdiction;
4. seed a short-video dataset (Faker, fixed seed) through each home gateway;
5. play the scenario: local staff at work, the parent's engineer abroad asking
   for public, protected and restricted data, a Lockbox-style approval granted
   by two custodian approvers, a k-anonymous export, an erasure; then inject a
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bordergate.client import GatewayClient
from bordergate.durable import replace_file
from bordergate.errors import BordergateError

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
        self.subjects = subjects
        self.ports = {c: base_port + i for i, c in enumerate(CODES)}
        self.urls = {c: f"http://127.0.0.1:{p}" for c, p in self.ports.items()}
        # the admin listeners (dashboard, /metrics): loopback, custodians and monitors only
        self.admin_urls = {c: f"http://127.0.0.1:{p + 1000}" for c, p in self.ports.items()}
        self.config = self.data / "deployment.toml"
        self.console = console or Console()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
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

    # -- 1. provisioning --------------------------------------------------------
    def prepare(self) -> None:
        """Wipe an earlier demo run, write the deployment file, provision it."""
        if self.data.exists():
            if not (self.data / MARKER).exists() and any(self.data.iterdir()):
                raise RuntimeError(f"{self.data} is not empty and not a bordergate demo "
                                   "directory; refusing to overwrite it")
            shutil.rmtree(self.data)
        self.data.mkdir(parents=True)
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
                f'log = {{ storage = "{d}/log", origin = "{code}.bordergate.example/log", '
                f'key_file = "{d}/log.key", pseudonym_secret_file = "{d}/pseudonym.secret" }}',
                f'issuer = {{ issuer = "https://issuer.{code}.bordergate.example", '
                f'public_keys = ["{d}/issuer.pub"], private_key_file = "{d}/issuer.pem" }}',
                f"reviewers = [{revs}]",
                "required_approvals = 2",
                "",
            ]
        return "\n".join(lines)

    # -- 2. releases ---------------------------------------------------------------
    def release(self) -> None:
        """Propose the installed release in us and eu and have both reviewers approve."""
        for code in ("us", "eu"):
            out = self.cli("release", "propose", "--config", str(self.config),
                           "--jurisdiction", code)
            index = out.split(" proposed at entry ")[1].split()[0]
            for key in self.reviewer_keys[code]:
                self.cli("release", "review", index, "--config", str(self.config),
                         "--jurisdiction", code, "--key-file", key, "--verdict", "approve",
                         "--note", "read the diff of every changed file and dependency")
        self.say("[bold]2.[/] release proposed and approved by 2 reviewers in us and eu; "
                 "cn will start [red]--unreviewed[/] (a finding the audit must show)")

    # -- 2b. separating the legacy business (docs/migration.md) -----------------------
    def migrate_legacy(self, users: int = 150) -> None:
        """Before any gateway runs: migrate a small legacy global database into the
        three homes, delete it from the source, and verify (the audit shows it)."""
        source = f"sqlite:{self.data / 'legacy-global.db'}"
        self.cli("migrate", "generate", "--source", source, "--users", str(users))
        cfg = ("--source", source, "--config", str(self.config))
        self.cli("migrate", "plan", *cfg, "--json", str(self.data / "migration-plan.json"),
                 check=False)  # exit 1 would mean unmapped columns: run refuses then
        self.cli("migrate", "run", *cfg, "--batch-subjects", "50", "--no-progress")
        out = self.cli("migrate", "verify", *cfg, "--json",
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
            out = open(logs / f"{code}.log", "wb")  # noqa: SIM115 (lives with the process)
            self.procs[code] = subprocess.Popen(
                [*_bordergate(), "gateway", "serve", "--config", str(self.config),
                 "--jurisdiction", code, *for_cn], stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env=self._gateway_env())
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
                if r.status_code == 200:
                    return
                if r.status_code == 503:
                    raise RuntimeError(f"the {code} gateway refuses to serve: {r.text[:2000]}")
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the {code} gateway did not become healthy: see {logfile}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()

    # -- principals --------------------------------------------------------------------
    def issue_tokens(self) -> None:
        """Principals of the local entities, the parent abroad and the custodians."""
        people = [
            Principal("alice@ttus", "ttus", "local", "us", ("engineer",)),
            Principal("elena@tteu", "tteu", "local", "eu", ("engineer",)),
            Principal("wei@parentco", "parentco", "parent", "cn", ("engineer",)),
            Principal("carol@custodian-us", "usdsp", "custodian", "us", ("approver",)),
            Principal("dave@custodian-us", "usdsp", "custodian", "us", ("approver",)),
        ]
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
        try:
            with concurrent.futures.ThreadPoolExecutor(12) as pool:
                list(pool.map(write, plans))
        finally:
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

        The us gateway is stopped, the forged ``approval-grant`` entry (state
        granted, approvals 1) is appended with ``bordergate log append`` using
        the custodian's log key, as a compromised gateway could, and the gateway
        is started again.  The audit must find it.
        """
        from bordergate.entries import encode_entry
        from bordergate.policy import default_bundle
        approval = self.facts["lone_approval"][0]
        carol = self.principals["carol"]
        body = {"approval": approval, "state": "granted", "approvals": 1,
                "approver": {"id": carol.id, "org": carol.org, "org_kind": "custodian",
                             "location": carol.location, "roles": list(carol.roles)},
                "bundle": default_bundle().digest, "gateway": "us", "release": None}
        entry = encode_entry("approval-grant", time.time(), body)
        gateway = self.procs.pop("us")
        gateway.terminate()
        gateway.wait(30)
        proc = subprocess.run([*_bordergate(), "log", "append", str(self.data / "data/us/log"),
                               "--key-file", str(self.data / "data/us/log.key")],
                              input=entry + b"\n", capture_output=True, timeout=120,
                              check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"forging failed: {proc.stderr.decode()}")
        self.facts["forged_index"] = int(proc.stdout.decode().strip()) - 1
        logs = self.data / "gateway-logs"
        out = open(logs / "us.restart.log", "wb")  # noqa: SIM115 (lives with the process)
        self.procs["us"] = subprocess.Popen(
            [*_bordergate(), "gateway", "serve", "--config", str(self.config),
             "--jurisdiction", "us"], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=self._gateway_env())
        self._wait_healthy("us", logs / "us.restart.log")
        self.say(f"    injected: a forged one-approver grant at us log index "
                 f"{self.facts['forged_index']}")

    def _approvals(self, us_watch: tuple[str, str, str]) -> None:
        with self.client("wei", "us") as wei:
            good = wei.request_approval(purpose="customer_support", reason="ticket",
                                        collections=["watch_history"], classes=["protected"],
                                        max_duration_s=3600)
            for approver in ("carol", "dave"):
                with self.client(approver, "us") as a:
                    a.grant(good["id"])
            r = wei.read("watch_history", us_watch[1], purpose="customer_support",
                         approval=good["id"])
            self.facts["approved_read"] = (sorted(r.fields), r.log_index)
            # an approval no custodian granted yet: using it is refused; the bad
            # actor injected later claims it was granted by one approver
            lone = wei.request_approval(purpose="customer_support", reason="ticket",
                                        collections=["users"], classes=["protected"],
                                        max_duration_s=3600)
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
        proc = subprocess.run([*_bordergate(), "audit", "run", "--config", str(auditor),
                               "--state", str(self.data / "audit-state"),
                               "--report", str(report)],
                              capture_output=True, text=True, timeout=600, check=False)
        self.facts["audit_output"] = proc.stdout + proc.stderr
        self.say(f"[bold]6.[/] audit of all three logs written to {report}/report.html "
                 f"(exit {proc.returncode})")
        return report

    def _auditor_config(self, path: Path) -> None:
        from bordergate.tlog.logdir import read_signer
        lines = ["# auditor configuration for the demo's three logs", "[auditor]",
                 'name = "demo monitor"',
                 f'separation = "{self.data / "migration-verify.json"}"', ""]
        for code in CODES:
            d = self.data / "data" / code
            vkey = read_signer(d / "log.key").verifier().key_string
            text = (self.config.read_text().split(f"[jurisdictions.{code}]")[1]
                    .split("[jurisdictions.")[0])
            reviewers = text.split("reviewers = ")[1].splitlines()[0]
            lines += [f"[logs.{code}]", f'location = "{d / "log"}"', f'vkey = "{vkey}"',
                      f"reviewers = {reviewers}", "required_approvals = 2",
                      f'approvers = ["carol@custodian-{code}", "dave@custodian-{code}"]', ""]
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
        from bordergate.tlog.logdir import read_signer
        out = self.data / "log-vkeys"
        out.mkdir(exist_ok=True)
        for code in CODES:
            key = read_signer(self.data / "data" / code / "log.key").verifier().key_string
            (out / code).write_text(key + "\n")


def _jti(token: str) -> str:
    """The ``jti`` claim of a token this demo minted (read, not verified)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


def _has_audit_run() -> bool:
    try:
        from bordergate.audit import commands
    except ImportError:
        return False
    return any(getattr(c, "name", None) == "run" or
               getattr(c.callback, "__name__", "") == "run"
               for c in commands.app.registered_commands)


@contextmanager
def _running(demo: Demo) -> Iterator[Demo]:
    try:
        yield demo
    finally:
        demo.stop()


def run_demo(data: Path, *, subjects: int = 3000, serve: bool = True,
             base_port: int = 8401, wait: Callable[[], None] | None = None) -> Demo:
    """Run every step; keep serving until interrupted when ``serve``."""
    demo = Demo(data, subjects=subjects, base_port=base_port)
    demo.prepare()
    demo.write_vkeys()
    demo.release()
    demo.migrate_legacy()
    with _running(demo):
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
            try:
                (wait or _forever)()
            except KeyboardInterrupt:
                demo.say("stopping")
    return demo


def _forever() -> None:
    while True:
        time.sleep(3600)
