"""The import rules of docs/architecture.md, read from its tables and checked on the source.

Imports are collected with ``ast`` from every module of the package (module level and inside
functions alike: a lazy import is still a dependency). The rules live in the document's
tables between ``<!-- rule: NAME -->`` markers, so the document and this test cannot say
different things: a rule changes in docs/architecture.md, and this test follows.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "architecture.md"
#: The package's folders (src/rtrec/...) and the ``rtrec`` package each one is.
FOLDERS = {
    "src/rtrec": "rtrec",
    "src/rtrec/schemas": "rtrec.schemas",
    "src/rtrec/transport": "rtrec.transport",
    "src/rtrec/store": "rtrec.store",
    "src/rtrec/recorder": "rtrec.recorder",
    "src/rtrec/replay": "rtrec.replay",
    "src/rtrec/simulator": "rtrec.simulator",
    "src/rtrec/cli": "rtrec.cli",
    "src/rtrec/lake": "rtrec.lake",
}
PACKAGES = tuple(p for p in FOLDERS.values() if p != "rtrec")


@functools.cache
def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> set[tuple[str, str | None]]:
    """(module, name) pairs of one import statement; the name is None for ``import x``, and
    ``from pkg import submodule`` gives the submodule."""
    if isinstance(node, ast.Import):
        return {(alias.name, None) for alias in node.names}
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
    found: set[tuple[str, str | None]] = set()
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        found.add((submodule, None) if submodule in modules() else (base, alias.name))
    return found


@functools.cache
def imports(module: str, *, top_level: bool = False) -> frozenset[tuple[str, str | None]]:
    """What ``module`` imports, as (module, name) pairs: everywhere in it, or only its
    module-level statements (those that run when it is imported)."""
    path = modules()[module]
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level else list(ast.walk(tree))
    found: set[tuple[str, str | None]] = set()
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= _targets(node, package)
    return frozenset(found)


def rtrec_imports(module: str) -> set[str]:
    """The rtrec modules ``module`` imports."""
    return {target for target, _ in imports(module) if target.split(".")[0] == "rtrec"}


def package_of(module: str) -> str:
    """``rtrec.schemas`` for ``rtrec.schemas.events``; ``rtrec._version`` is its own; every
    other module of the package root is ``rtrec``."""
    if module == "rtrec._version":
        return module
    for package in PACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    return "rtrec"


def closure(module: str) -> set[str]:
    """Every module ``module`` imports, directly or through rtrec modules it imports (a
    package's ``__init__`` counts where the package itself is imported, not for each of its
    submodules)."""
    reached, todo, found = {module}, [module], set()
    while todo:
        for target, _ in imports(todo.pop()):
            found.add(target)
            if target in modules() and target not in reached:
                reached.add(target)
                todo.append(target)
    return found


# ------------------------------------------------------------------ the document's tables


def rule_table(name: str) -> list[list[str]]:
    """The rows of the table after ``<!-- rule: name -->``: per row, per cell, the
    backquoted names (a cell without any gives an empty list)."""
    text = DOC.read_text()
    match = re.search(rf"<!-- rule: {name} -->\n(.*?)(?:\n\n|\Z)", text, re.S)
    assert match, f"docs/architecture.md has no table marked <!-- rule: {name} -->"
    rows = [line for line in match.group(1).splitlines() if line.startswith("|")][2:]
    return [
        [" ".join(re.findall(r"`([^`]+)`", cell)) for cell in row.strip("|").split("|")]
        for row in rows
    ]


def names(cell: str) -> set[str]:
    return set(cell.split())


def matches(module: str, patterns: set[str]) -> bool:
    """Whether ``module`` is one of ``patterns`` (``pkg.*``: any module of pkg, not pkg)."""
    return any(module == p or (p.endswith(".*") and module.startswith(p[:-1])) for p in patterns)


MODULE_NAME = re.compile(r"^rtrec(\.[\w*]+)*$")


def test_the_tables_name_real_modules() -> None:
    """Every module the rules name exists (a renamed module must be renamed in the doc)."""
    named = set()
    for table in ("packages", "pure", "commands", "process"):
        for row in rule_table(table):
            named.update(n for cell in row for n in names(cell) if MODULE_NAME.match(n))
    for name in named:
        if name.endswith(".*"):
            assert any(m.startswith(name[:-1]) for m in modules()), name
        else:
            assert name in modules(), name


def test_packages_import_only_what_the_table_allows() -> None:
    """Each package's library modules import only the packages its row of the table names
    (the package root ``rtrec`` included: a library module may import ``rtrec._version``
    only); command modules, wherever they still live, may import everything."""
    allowed = {row[0]: names(row[1]) for row in rule_table("packages")}
    assert set(allowed) == {*PACKAGES, "rtrec"}
    commands = {row[0] for row in rule_table("commands")}  # commands import everything
    broken = []
    for module in modules():
        own = package_of(module)
        if own == "rtrec._version" or module in commands:
            continue
        for target in rtrec_imports(module):
            other = package_of(target)
            if other != own and "everything" not in allowed[own] and other not in allowed[own]:
                broken.append(f"{module} imports {target}")
    assert broken == []


def test_pure_modules_import_no_io_library() -> None:
    """The data model, the reducer and the sans-I/O cores import none of the libraries the
    table names, neither directly nor through any rtrec module they import."""
    ((patterns, forbidden),) = [(names(row[0]), names(row[1])) for row in rule_table("pure")]
    pure = [m for m in modules() if matches(m, patterns)]
    assert len(pure) >= len(patterns)
    broken = {
        module: sorted(t for t in closure(module) if t.split(".")[0] in forbidden)
        for module in pure
    }
    assert {m: found for m, found in broken.items() if found} == {}


def test_no_library_module_imports_a_command_module() -> None:
    """The table lists every command module (each one ``rtrec.cli`` loads, and every module
    that uses click); no other module imports one: commands hold no library code."""
    commands = {row[0] for row in rule_table("commands")}
    cli = (REPO / "src" / "rtrec" / "cli" / "__init__.py").read_text()
    loaded = set(re.findall(r'"(rtrec\.[\w.]+):\w+"', cli)) | {"rtrec.cli", "rtrec.__main__"}
    clicking = {m for m in modules() if any(t.split(".")[0] == "click" for t, _ in imports(m))}
    assert loaded - commands == set(), "rtrec.cli loads these; list them as commands"
    assert clicking - commands == set(), "these use click; list them as commands"
    broken = []
    for module in set(modules()) - commands:
        for target, name in imports(module):
            if target in commands:
                broken.append(f"{module} imports {target}{'.' + name if name else ''}")
    assert broken == []


PROCESS_WIDE = re.compile(
    r"^(sys\.(setswitchinterval|setrecursionlimit)|gc\.(disable|enable|set_threshold|freeze)"
    r"|signal\.signal|os\.(chdir|umask)|locale\.setlocale|logging\.basicConfig)$"
)


def test_process_wide_settings_only_by_an_explicit_call() -> None:
    """Only the modules the table names change process-wide state (switch interval, garbage
    collector, signal handlers, working directory, umask, locale, root logging)."""
    allowed = {n for row in rule_table("process") for n in names(row[0])}
    found = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            called = ast.unparse(node.func) if isinstance(node, ast.Call) else ""
            if PROCESS_WIDE.match(called) and module not in allowed:
                found.append(f"{module}: {called}")
    assert found == []


def test_no_import_cycles_between_modules() -> None:
    """Module-level imports form no cycle (function-level ones may: they run later)."""
    graph = {
        module: {t for t, _ in imports(module, top_level=True) if t in modules()}
        for module in modules()
    }

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(module) :], module]))
        for target in graph.get(module, ()):
            if target not in done:
                visit(target, [*path, module])
        done.add(module)

    done: set[str] = set()
    for module in graph:
        visit(module, [])
