"""The CLI conventions (issue 16 item 5): every command behaves like the tools people know.

Every command and group of the tree (walked from the root, deferred groups
loaded) answers ``--help`` with exit 0 and the exit codes in its epilog, and
answers a usage error with exit 2 and the common error format on stderr
(:mod:`bordergate.exit_codes`).  A command added later is walked too, so it
cannot merge without following them.  A fast command imports only what it
needs: no policy engine, web stack, HTTP client, pydantic or rich.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer import _click
from typer.core import TyperGroup
from typer.testing import CliRunner

from bordergate import __version__
from bordergate.cli import app
from bordergate.command_tree import DeferredCommand, walk
from bordergate.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    PolicyDenied,
    PushBack,
    Unauthenticated,
    Unavailable,
    VerificationError,
)
from bordergate.exit_codes import ExitCode, exit_code_for

pytestmark = pytest.mark.filterwarnings("error")

BORDERGATE = str(Path(sys.executable).with_name("bordergate"))
ERROR_FORMAT = re.compile(r"^error \[[a-z0-9_]+\]: .+\n  what to do: .+$", re.M)
runner = CliRunner()


def _tree() -> list[tuple[str, ...]]:
    return [path for path, _ in walk(typer.main.get_command(app))]


COMMANDS = _tree()


def test_the_walk_covers_the_known_commands() -> None:
    """The walk reaches deferred groups and their commands from other modules."""
    names = {" ".join(p) for p in COMMANDS}
    assert {"", "log", "log checkpoint", "log vkey", "log sequencer", "audit run",
            "audit init", "gateway public-keys", "gateway revoke-token", "keys status",
            "version", "demo"} <= names
    assert len(COMMANDS) > 50


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "bordergate")
def test_help_works_and_lists_the_exit_codes(path: tuple[str, ...]) -> None:
    """`--help` of every command and group exits 0 and lists the exit codes (epilog)."""
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Exit codes: 0 success; 1 verification failed or refused; 2 usage error" \
        in result.stdout


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "bordergate")
def test_a_usage_error_exits_2_in_the_common_format(path: tuple[str, ...]) -> None:
    """An unknown option, given to any command or group, exits 2 with one error in the
    common format on stderr (code, message, what to do) and nothing on stdout."""
    result = runner.invoke(app, [*path, "--no-such-option"])
    assert result.exit_code == 2, result.output
    assert ERROR_FORMAT.fullmatch(result.stderr.strip()), result.stderr
    assert "error [unknown_option]: No such option: --no-such-option" in result.stderr
    assert result.stdout == ""


def test_deferred_short_help_is_the_commands_own() -> None:
    """The short help `bordergate --help` shows without importing a group is the start
    of that group's (or command's) own help text, so the listing cannot drift."""
    root = typer.main.get_command(app)
    deferred = [c for c in walk_unloaded(root) if isinstance(c, DeferredCommand)]
    assert len(deferred) >= 15
    for stand_in in deferred:
        own = " ".join((stand_in.load().help or "").split())
        assert own.startswith(stand_in.short_help.rstrip(".")), (stand_in.name, own)


def walk_unloaded(command: _click.Command) -> list[_click.Command]:
    """Every command object below ``command``, the deferred stand-ins included."""
    out = [command]
    commands = getattr(command.load() if isinstance(command, DeferredCommand) else command,
                       "commands", {})
    for child in commands.values():
        out += walk_unloaded(child)
    return out


def test_missing_arguments_and_bad_values_are_usage_errors(tmp_path: Path) -> None:
    """A missing option or a malformed value is a usage error too (exit 2, common format,
    a stable code), as is a group given no command (its help, exit 2)."""
    missing = runner.invoke(app, ["log", "verify", str(tmp_path)])
    assert missing.exit_code == 2 and "error [missing_parameter]:" in missing.stderr
    bad = runner.invoke(app, ["log", "prove", str(tmp_path), "--index", "x"])
    assert bad.exit_code == 2 and "error [bad_parameter]:" in bad.stderr
    assert ERROR_FORMAT.fullmatch(bad.stderr.strip())
    bare = runner.invoke(app, ["log"])
    assert bare.exit_code == 2 and "Usage: bordergate log" in bare.stderr


@pytest.mark.parametrize(("error", "code"), [
    (VerificationError("x"), ExitCode.REFUSED),
    (PolicyDenied("x"), ExitCode.REFUSED),
    (Conflict("x"), ExitCode.REFUSED),
    (Unauthenticated("x"), ExitCode.REFUSED),
    (InvalidInput("x"), ExitCode.USAGE),
    (ConfigError("x"), ExitCode.USAGE),
    (Unavailable("x"), ExitCode.UNAVAILABLE),
    (PushBack("x"), ExitCode.UNAVAILABLE),
    (NotFound("x"), ExitCode.UNAVAILABLE),
    (FileNotFoundError("x"), ExitCode.UNAVAILABLE),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(int(v)))
def test_exit_code_by_who_is_at_fault(error: BaseException, code: ExitCode) -> None:
    """The one mapping from the error tree to exit codes (bordergate.exit_codes)."""
    assert exit_code_for(error) == code


def test_errors_of_commands_follow_the_conventions(tmp_path: Path) -> None:
    """Real failures in three classes: a malformed key (2), a missing log (3, and with
    --json a JSON error on stdout), and a log that does not verify (1)."""
    malformed = runner.invoke(app, ["log", "verify", str(tmp_path), "--vkey", "garbage"])
    assert malformed.exit_code == 2, malformed.output
    assert ERROR_FORMAT.fullmatch(malformed.stderr.strip()), malformed.stderr
    missing = runner.invoke(app, ["log", "checkpoint", str(tmp_path / "none"), "--json"])
    assert missing.exit_code == 3 and "error [checkpoint_missing]" in missing.stderr
    assert json.loads(missing.stdout)["error"] == "checkpoint_missing"
    made = runner.invoke(app, ["log", "init", str(tmp_path / "log"), "--origin", "c.test/log"])
    assert made.exit_code == 0, made.output
    other = runner.invoke(app, ["log", "init", str(tmp_path / "other"), "--origin",
                                "c.test/log"])
    wrong_key = other.stdout.strip().splitlines()[-1]
    wrong = runner.invoke(app, ["log", "verify", str(tmp_path / "log"), "--vkey", wrong_key])
    assert wrong.exit_code == 1 and ERROR_FORMAT.fullmatch(wrong.stderr.strip())


def test_a_jurisdiction_is_named_with_j_everywhere() -> None:
    """Every option that names a jurisdiction answers to -j and --jurisdiction."""
    named = [(path, p) for path, c in walk(typer.main.get_command(app)) for p in c.params
             if p.name in ("jurisdiction", "home")]
    assert len(named) >= 20
    for path, param in named:
        assert {"-j", "--jurisdiction"} <= set(param.opts), (path, param.opts)


# commands without --json, by reason; a new command printing a result needs --json
NO_JSON = {
    "serves until stopped, prints no result": {
        "log serve", "log sequencer", "witness serve", "gateway serve", "keys serve", "demo"},
    "prints JSON always": {
        "log prove", "gateway openapi", "gateway revoke-token", "keys init", "keys rotate",
        "keys destroy", "approval grant", "approval deny", "approval revoke", "roster sign",
        "roster publish", "principal keygen"},
    "prints one value for pipes (a size, a token, a path, a key)": {
        "log append", "principal issue", "schema demo-path", "approval keygen",
        "release keygen", "roster keygen"},
}


def test_every_command_that_prints_a_result_takes_json() -> None:
    """`--json` on every command that prints a result, but those listed with a reason."""
    exempt = set().union(*NO_JSON.values())
    lacking = {" ".join(path) for path, c in walk(typer.main.get_command(app))
               if not isinstance(c, TyperGroup)
               and not any("--json" in getattr(p, "opts", []) for p in c.params)}
    assert lacking - exempt == set()
    assert exempt - lacking == set()  # the list stays true as commands gain --json


def test_version_option() -> None:
    """`bordergate --version` prints the name and version and exits 0."""
    proc = subprocess.run([BORDERGATE, "--version"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout == f"bordergate {__version__}\n"


HEAVY = ("cedarpy", "opendp", "starlette", "uvicorn", "rich", "httpx", "pydantic",
         "jwt", "psycopg", "numpy", "cryptography")
_PROBE = """
import sys
sys.argv = ["bordergate", *sys.argv[1:]]
from bordergate.cli import main
try:
    main()
except SystemExit:
    pass
print("MODULES", " ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.mark.parametrize("args", [["--help"], ["log", "checkpoint", "{log}"],
                                  ["log", "checkpoint", "--help"], ["--version"]],
                         ids=["help", "log-checkpoint", "log-checkpoint-help", "version"])
def test_a_fast_command_imports_only_what_it_needs(tmp_path: Path, args: list[str]) -> None:
    """Start-up: `bordergate --help` and `log checkpoint` (deferred groups, plain
    parameter conversion) import no policy engine, web stack, HTTP client, crypto,
    pydantic or rich (about 0.1 s each of the 0.4-0.5 s start-up they cost before)."""
    log = tmp_path / "log"
    assert runner.invoke(app, ["log", "init", str(log), "--origin", "s.test/log"]).exit_code == 0
    proc = subprocess.run([sys.executable, "-c", _PROBE,
                           *(a.format(log=log) for a in args)],
                          capture_output=True, text=True, timeout=60, check=False)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("MODULES "))
    loaded = set(line.split()[1:])
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert "bordergate" in loaded
