"""The documents name only commands and options that exist (README and docs stay true).

Every ``bordergate ...`` command line written in README.md or docs/*.md, in
inline code or on a line of a code block, names a command of the tree (walked
as tests/test_cli_conventions.py walks it, deferred groups loaded) and only
options that command takes.  A renamed option or command that a document
still names fails here, naming the document and the line, so the quick
starts and runbooks (docs/scale-out.md's shell lines among them) are checked
against the code rather than only read.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
from typer import _click

from bordergate.cli import app
from bordergate.command_tree import walk

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_INLINE = re.compile(r"`((?:\$ )?(?:\S*/)?bordergate [^`]+)`")
_BLOCK_LINE = re.compile(r"^\s*(?:\$ )?(?:\S*/)?(bordergate [^#\n]+)", re.M)
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
_OPTION = re.compile(r"(?<![\w./=-])(--?[A-Za-z][\w-]*)")
_WORD = re.compile(r"[a-z][a-z0-9-]*")


COMMANDS: dict[tuple[str, ...], _click.Command] = dict(walk(typer.main.get_command(app)))


def _mentions(text: str) -> list[tuple[int, str]]:
    """(line number, command line) of every ``bordergate ...`` in ``text``."""
    found = [(m.start(), m.group(1)) for m in _INLINE.finditer(text)]
    for fence in _FENCE.finditer(text):
        body_start = fence.start(1)
        found += [(body_start + m.start(1), m.group(1))
                  for m in _BLOCK_LINE.finditer(fence.group(1))]
    return sorted((text.count("\n", 0, at) + 1, line.strip()) for at, line in found)


def _problem(line: str) -> str | None:
    """What is wrong with one command line, or None.  A word of alternatives where
    a command goes (``keys init/rotate/status``, ``grant|deny|revoke``) stands
    for each of them."""
    words = line.split()
    assert words[0].endswith("bordergate")
    for at, word in enumerate(words[1:], 1):
        if word.startswith("-"):
            break
        choices = re.split(r"[/|]", word)
        if len(choices) > 1 and all(_WORD.fullmatch(c) for c in choices):
            found = [_problem(" ".join((*words[:at], c, *words[at + 1:]))) for c in choices]
            return next((f for f in found if f is not None), None)
    path: tuple[str, ...] = ()
    rest = words[1:]
    while rest and (*path, rest[0]) in COMMANDS:
        path, rest = (*path, rest[0]), rest[1:]
    command = COMMANDS[path]
    group = any(len(known) == len(path) + 1 and known[:len(path)] == path for known in COMMANDS)
    if group and rest and _WORD.fullmatch(rest[0]):
        return f"no command {' '.join((*path, rest[0]))!r}"
    accepted = {"--help"} | {opt for param in command.params
                             for opt in (*param.opts, *param.secondary_opts)}
    unknown = sorted({o for o in _OPTION.findall(" ".join(rest)) if o not in accepted})
    if unknown:
        return f"{' '.join(('bordergate', *path))} takes no {', '.join(unknown)}"
    return None


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_command_line_in_the_documents_exists(document: Path) -> None:
    """README.md and docs/*.md: each ``bordergate ...`` names a real command and only
    its options (``--help`` everywhere)."""
    problems = [f"{document.name}:{number}: `{line}`: {problem}"
                for number, line in _mentions(document.read_text(encoding="utf-8"))
                if (problem := _problem(line)) is not None]
    assert not problems, "\n".join(problems)


def test_the_check_finds_a_wrong_command_and_a_wrong_option() -> None:
    """The check itself: a misspelt command, an option the command lacks, and a
    right line (options of the named subcommand, not of its group)."""
    assert _problem("bordergate gateway serv --config F") == "no command 'gateway serv'"
    assert _problem("bordergate log sequencer --config F --no-such-flag") == \
        "bordergate log sequencer takes no --no-such-flag"
    assert _problem("bordergate log sequencer --config F --jurisdiction us") is None
    assert _problem("bordergate keys init/rotate/status --config F -j X") is None
    assert _problem("bordergate keys init/rotat --config F") == "no command 'keys rotat'"
    assert _mentions("run `bordergate audit run --state D`, then\n```\n"
                     "$ bordergate version\n```\n") == [
        (1, "bordergate audit run --state D"), (3, "bordergate version")]
