"""No import cycles between bordergate's rooms, nor between the log's modules.

Issue 10, item 6: a room (a first-level subpackage such as ``policy``, or a
top-level module such as ``entries``) that imports another room which imports
it back cannot be read, tested or replaced on its own.  The same holds inside
``tlog``, whose pure formats (``merkle``, ``note``, ``checkpoint``, ``tiles``)
must stay readable one at a time.

The graph is read from the source, not from ``sys.modules``: every ``import``
and ``from ... import`` anywhere in a file counts, including the lazy ones
inside functions and those under ``TYPE_CHECKING``, and ``from . import x``
counts as an import of the submodule ``x``.  Importing ``a.b.c`` also runs the
``__init__`` of ``a`` and ``a.b``; those implicit parent imports are not edges
(every module would otherwise form a cycle with its own package).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "bordergate"
LOG_PACKAGE = "bordergate.tlog"

# Import edges (importer unit, imported unit) tolerated in a cycle, each with
# the reason.  Empty on purpose: break a cycle by moving the shared concept
# into a leaf module rather than adding to this table.
ALLOWED_EDGES: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class ImportSite:
    """One import statement: the importing module, its line, the imported module."""

    importer: str
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root``, by dotted name (packages by their name)."""
    names: dict[str, Path] = {}
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _imported_names(node: ast.Import | ast.ImportFrom, importer: str,
                    is_package: bool, modules: dict[str, Path]) -> Iterator[str]:
    """The modules one import statement names (``from p import x`` names ``p.x`` if a module)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:
        anchor = importer.split(".") if is_package else importer.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    yield base
    for alias in node.names:
        if f"{base}.{alias.name}" in modules:
            yield f"{base}.{alias.name}"


def import_sites(root: Path, package: str) -> list[ImportSite]:
    """Every import of a module of ``package`` made anywhere in ``package``'s source."""
    modules = module_names(root, package)
    sites: list[ImportSite] = []
    for importer, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported_names(node, importer, is_package, modules):
                if name in modules:
                    sites.append(ImportSite(importer, node.lineno, name))
    return sites


def room_of(module: str, package: str) -> str:
    """The room a module belongs to: ``package.<first part>`` (the package itself for its init)."""
    parts = module.split(".")
    depth = package.count(".") + 2
    return ".".join(parts[:depth])


def module_in(scope: str) -> Callable[[str], str | None]:
    """Map a module to itself when inside ``scope`` (but not ``scope``'s init), else None."""
    def unit(module: str) -> str | None:
        return module if module.startswith(scope + ".") else None
    return unit


def build_graph(sites: Iterable[ImportSite], unit: Callable[[str], str | None]
                ) -> dict[tuple[str, str], list[ImportSite]]:
    """Edges between units (skipping ``ALLOWED_EDGES`` and self-edges), with their import sites."""
    edges: dict[tuple[str, str], list[ImportSite]] = {}
    for site in sites:
        source, target = unit(site.importer), unit(site.imported)
        if source is None or target is None or source == target:
            continue
        if (source, target) in ALLOWED_EDGES:
            continue
        edges.setdefault((source, target), []).append(site)
    return edges


def find_cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """One cycle (as a closed path of units) per strongly connected component of size > 1."""
    graph: dict[str, list[str]] = {}
    for source, target in sorted(edges):
        graph.setdefault(source, []).append(target)
        graph.setdefault(target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan; the graph is a few dozen nodes deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in graph:
        if node not in index:
            connect(node)
    return [_cycle_within(graph, component) for component in components]


def _cycle_within(graph: dict[str, list[str]], component: set[str]) -> list[str]:
    """A shortest closed path through the smallest-named member of a strongly connected set."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for successor in graph[node]:
                if successor == start:
                    return [*paths[node], start]
                if successor in component and successor not in paths:
                    paths[successor] = [*paths[node], successor]
                    following.append(successor)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def describe(cycle: list[str], edges: dict[tuple[str, str], list[ImportSite]]) -> str:
    """The cycle as text, each step with the import statements that make it."""
    lines = [" -> ".join(cycle)]
    for source, target in itertools.pairwise(cycle):
        lines.extend(f"    {site}" for site in edges[(source, target)])
    return "\n".join(lines)


def check_acyclic(edges: dict[tuple[str, str], list[ImportSite]]) -> None:
    """Fail, printing every cycle with its import sites, if the graph has one."""
    cycles = find_cycles(edges)
    if cycles:
        pytest.fail("import cycle(s):\n" + "\n".join(describe(c, edges) for c in cycles),
                    pytrace=False)



def test_no_cycle_between_rooms() -> None:
    """No room of bordergate imports, directly or through others, a room that imports it."""
    sites = import_sites(SOURCE_ROOT, PACKAGE)
    check_acyclic(build_graph(sites, lambda module: room_of(module, PACKAGE)))


def test_no_cycle_between_log_modules() -> None:
    """Inside ``tlog``, no module imports (even lazily) a module that imports it back."""
    sites = import_sites(SOURCE_ROOT, PACKAGE)
    check_acyclic(build_graph(sites, module_in(LOG_PACKAGE)))


def test_allowed_edges_still_exist() -> None:
    """Every allow-listed edge names a real import, so the table cannot outlive its reason."""
    sites = import_sites(SOURCE_ROOT, PACKAGE)
    seen = {(room_of(s.importer, PACKAGE), room_of(s.imported, PACKAGE)) for s in sites}
    seen |= {(s.importer, s.imported) for s in sites}
    assert set(ALLOWED_EDGES) <= seen


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """A cycle closed only by a lazy import inside a function, or by ``from . import x``,
    is found and printed with its import sites (so the checks above can fail)."""
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/alpha/__init__.py": "",
        "pkg/alpha/core.py": "from pkg.beta import leaf\n",
        "pkg/beta/__init__.py": "",
        "pkg/beta/leaf.py": "def late():\n    from ..alpha import core\n    return core\n",
        "pkg/gamma/__init__.py": "from . import one\n",
        "pkg/gamma/one.py": "",
        "pkg/gamma/two.py": "from . import one\n",
        "pkg/gamma/three.py": "import pkg.gamma.two\n",
    })
    sites = import_sites(tmp_path, "pkg")
    assert ImportSite("pkg.beta.leaf", 2, "pkg.alpha.core") in sites
    assert ImportSite("pkg.gamma", 1, "pkg.gamma.one") in sites
    rooms = build_graph(sites, lambda module: room_of(module, "pkg"))
    assert find_cycles(rooms) == [["pkg.alpha", "pkg.beta", "pkg.alpha"]]
    with pytest.raises(pytest.fail.Exception, match=r"pkg.beta.leaf:2 imports pkg.alpha.core"):
        check_acyclic(rooms)
    assert find_cycles(build_graph(sites, module_in("pkg.gamma"))) == []


def test_check_finds_longer_cycles_inside_a_package(tmp_path: Path) -> None:
    """A three-module cycle inside one package (a base class importing its subclass's
    module through a third) is reported as one closed path."""
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/log/__init__.py": "",
        "pkg/log/base.py": "def make():\n    from pkg.log.sub import Sub\n    return Sub\n",
        "pkg/log/sub.py": "from pkg.log import middle\n",
        "pkg/log/middle.py": "from .base import make\n",
    })
    edges = build_graph(import_sites(tmp_path, "pkg"), module_in("pkg.log"))
    assert find_cycles(edges) == [["pkg.log.base", "pkg.log.sub", "pkg.log.middle",
                                   "pkg.log.base"]]
