"""The design document stays true to the tree: its promise table and every link resolve.

docs/design.md maps each of the eight promises to the files that keep it and
the tests that check it.  Code moves; these tests fail when a path or a test
named in that table no longer exists, when a promise loses its row, when a
relative link in README.md or docs/*.md points at nothing, or when anything
points at a design file outside the repository again.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DESIGN = REPO / "docs" / "design.md"
TABLE_HEADING = "## Where each promise is kept"
PROMISES = range(1, 9)

_CODE_SPAN = re.compile(r"`([^`]+)`")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class PromiseRow:
    """One row of the promise table: the promise and the paths in its two columns."""

    promise: int
    enforced_in: tuple[str, ...]
    checked_by: tuple[str, ...]


def promise_table(text: str) -> list[PromiseRow]:
    """The rows of the table under ``TABLE_HEADING`` in the design document's text.

    Raises:
        AssertionError: the heading or the table is missing, or a row is malformed.
    """
    _, found, rest = text.partition(TABLE_HEADING + "\n")
    assert found, f"docs/design.md has no section {TABLE_HEADING!r}"
    lines = rest.split("\n## ", 1)[0].splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert len(table) > 2, "the promise table has no rows"
    rows = []
    for line in table[2:]:  # skip the header and the |---| line
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 3, f"a promise row needs three cells: {line!r}"
        number = re.match(r"\d+", cells[0])
        assert number, f"a promise row must start with the promise number: {line!r}"
        rows.append(PromiseRow(int(number.group()), tuple(_CODE_SPAN.findall(cells[1])),
                               tuple(_CODE_SPAN.findall(cells[2]))))
    return rows


def _defined_names(source: Path) -> set[str]:
    """``name`` and ``Class::name`` for every function and class a Python file defines."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(f"{node.name}::{item.name}" for item in node.body
                         if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef))
    return names


def missing_reference(reference: str) -> str | None:
    """Why ``reference`` (``path``, ``dir/`` or ``path::test``) does not resolve, or None."""
    path_text, _, name = reference.partition("::")
    if path_text.startswith("/") or ".." in Path(path_text).parts:
        return f"{reference}: not a path inside the repository"
    path = REPO / path_text
    if path_text.endswith("/"):
        return None if path.is_dir() else f"{reference}: no such directory"
    if not path.is_file():
        return f"{reference}: no such file"
    if name and name not in _defined_names(path):
        return f"{reference}: {path_text} defines no {name}"
    return None


def markdown_links(text: str) -> list[str]:
    """Every link target of a Markdown text, outside code blocks and code spans."""
    prose = _CODE_SPAN.sub("", _FENCE.sub("", text))
    return _INLINE_LINK.findall(prose) + _REFERENCE_LINK.findall(prose)


def broken_link(document: Path, target: str) -> str | None:
    """Why a relative link of ``document`` does not resolve inside the repository, or None."""
    if _SCHEME.match(target) or target.startswith("#"):
        return None  # a URL or an anchor in the same page: not a path in the tree
    relative = target.split("#", 1)[0]
    resolved = (document.parent / relative).resolve()
    where = f"{document.relative_to(REPO)}: {target}"
    if not resolved.is_relative_to(REPO):
        return f"{where} points outside the repository"
    if not resolved.exists():
        return f"{where} does not exist"
    return None


def test_every_promise_has_a_row_with_code_and_tests() -> None:
    """Behaviour (the design lives in the repository): promises 1..8 each have one row
    naming at least one file under src/ and one under tests/."""
    rows = promise_table(DESIGN.read_text(encoding="utf-8"))
    numbers = [row.promise for row in rows]
    assert sorted(numbers) == list(PROMISES), f"promise rows: {numbers}"
    for row in rows:
        assert any(p.startswith("src/bordergate/") for p in row.enforced_in), row
        assert any(p.startswith("tests/") for p in row.checked_by), row


def test_every_path_in_the_promise_table_exists() -> None:
    """Behaviour (the design lives in the repository): each file, directory and test the
    promise table names still exists."""
    rows = promise_table(DESIGN.read_text(encoding="utf-8"))
    references = [ref for row in rows for ref in (*row.enforced_in, *row.checked_by)]
    missing = [why for why in map(missing_reference, references) if why]
    assert not missing, "docs/design.md names what is gone:\n" + "\n".join(missing)


THREAT_MODEL = REPO / "docs" / "threat-model.md"


def named_paths(text: str) -> list[str]:
    """Every code span of a Markdown text that names a path under ``tests/`` or
    ``src/`` (a file, a directory, or ``path::name``)."""
    return [span for span in _CODE_SPAN.findall(_FENCE.sub("", text))
            if span.startswith(("tests/", "src/")) and " " not in span]


def test_every_test_the_threat_model_names_exists() -> None:
    """Behaviour (issue 12 item 8): every test (``path::name``) and path that
    docs/threat-model.md names as the check that catches an attack still exists, the
    model is linked from docs/design.md and README.md, and the rows still waiting for
    their test are exactly those its pending list names."""
    text = THREAT_MODEL.read_text(encoding="utf-8")
    references = named_paths(text)
    assert sum("::" in r for r in references) >= 30, "the threat model names its tests"
    missing = [why for why in map(missing_reference, references) if why]
    assert not missing, "docs/threat-model.md names what is gone:\n" + "\n".join(missing)
    for document in ("docs/design.md", "README.md"):
        assert "threat-model.md" in (REPO / document).read_text(encoding="utf-8"), document
    pending = set(re.findall(r"pending: [a-z-]+ \((R[0-9]+)\)", text))
    section = text.split("## Rows that depend on work still landing", 1)
    listed = set(re.findall(r"^\| (R[0-9]+) \|", section[1].split("\n## ")[0],
                            re.MULTILINE)) if len(section) == 2 else set()
    assert pending == listed, f"pending rows {sorted(pending)} vs listed {sorted(listed)}"


def test_relative_links_in_docs_and_readme_resolve() -> None:
    """Behaviour (the design lives in the repository): every relative link in README.md
    and docs/*.md points at a file inside the repository."""
    documents = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = [why for doc in documents
              for target in markdown_links(doc.read_text(encoding="utf-8"))
              if (why := broken_link(doc, target))]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_nothing_points_at_a_design_file_outside_the_repository() -> None:
    """Behaviour (the design lives in the repository): README, docs, code and tests cite
    docs/design.md, never the old out-of-tree design file."""
    needle = "DESIGN" + ".md"  # spelled apart so this file does not match itself
    here = Path(__file__).resolve()
    places = [REPO / "README.md", *(REPO / "docs").rglob("*.md"),
              *(p for top in ("src", "tests", "bench") for p in (REPO / top).rglob("*")
                if p.is_file() and p.suffix in {".py", ".toml", ".md", ".cedar",
                                                ".cedarschema", ".html"})]
    cited = [f"{p.relative_to(REPO)}:{n}" for p in places if p != here
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if needle in line]
    assert not cited, "cite docs/design.md instead:\n" + "\n".join(cited)


@pytest.mark.parametrize(
    ("reference", "resolves"),
    [("src/bordergate/entries.py", True), ("src/bordergate/tlog/", True),
     ("tests/test_entries.py::test_pseudonyms_are_keyed_and_provable", True),
     ("src/bordergate/no_such_module.py", False), ("src/bordergate/nowhere/", False),
     ("tests/test_entries.py::test_that_was_renamed", False), ("../outside.py", False)],
    ids=str,
)
def test_the_reference_check_tells_present_from_gone(reference: str, resolves: bool) -> None:
    """Behaviour: the table check itself accepts what exists and names what does not
    (files, directories, tests inside a file, paths escaping the repository)."""
    assert (missing_reference(reference) is None) is resolves


def test_the_link_check_skips_urls_and_code_and_catches_escapes() -> None:
    """Behaviour: URLs, anchors and links inside code are not paths; a link that leaves
    the repository or names a missing file is broken."""
    text = ("[a](https://c2sp.org/tlog-tiles) [b](#promises) `[c](nowhere.md)`\n"
            "```\n[d](nowhere.md)\n```\n[e](config.md#profiles) [f](../../shared/X.md)\n"
            "[g]: gateway.md\n")
    targets = markdown_links(text)
    assert targets == ["https://c2sp.org/tlog-tiles", "#promises", "config.md#profiles",
                       "../../shared/X.md", "gateway.md"]
    design = REPO / "docs" / "design.md"
    assert [broken_link(design, t) is None for t in targets] == [True, True, True, False, True]
