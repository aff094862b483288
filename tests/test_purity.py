"""The pure core stays pure: no I/O, no clock, no randomness in its imports or calls (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "tradepipe"
# Everything under core/ is pure (the folder is walked, so a new module is checked without being
# listed), and so are the brokers' translation modules: SDK shapes in, our values out.
PURE = [
    *sorted(
        str(path.relative_to(SRC).with_suffix(""))
        for path in (SRC / "core").glob("*.py")
        if path.name != "__init__.py"
    ),
    "brokers/ccxt/budget",
    "brokers/ccxt/orders",
    "brokers/alpaca/parsing",
    "brokers/alpaca/fills",
    "brokers/ibkr/translation",
    "brokers/ibkr/orders",
    "brokers/paper/books",
    "brokers/paper/chains",
]
# A pure broker module may import a pure sibling, and nothing else of tradepipe.brokers.
PURE_SIBLINGS = {"brokers/ibkr/orders": {"tradepipe.brokers.ibkr.translation"}}
FORBIDDEN_MODULES = {
    "aiohttp",
    "sqlite3",
    "sqlite_utils",
    "socket",
    "asyncio",
    "random",
    "uuid",
    "secrets",
    "subprocess",
    "time",
    "os",
    "tradepipe.journal",
    "tradepipe.config",
    "tradepipe.cli",
    "tradepipe.engine",
    "tradepipe.daemon",
    "tradepipe.brokers",
}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "uuid4", "time", "monotonic", "getenv", "open"}


def _imported(tree: ast.AST) -> set[str]:
    """Every module the tree imports, at any depth."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_nothing_impure(module):
    imported = _imported(ast.parse((SRC / f"{module}.py").read_text()))
    siblings = PURE_SIBLINGS.get(module, set())
    assert {s.removeprefix("tradepipe.").replace(".", "/") for s in siblings} <= set(PURE)
    bad = {
        name
        for name in imported - siblings
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_MODULES)
    }
    assert bad == set()


@pytest.mark.parametrize("module", PURE)
def test_pure_module_reads_no_clock_and_no_environment(module):
    tree = ast.parse((SRC / f"{module}.py").read_text())
    calls = {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    assert calls & FORBIDDEN_CALLS == set()
    assert "environ" not in {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


@pytest.mark.parametrize("module", [m for m in PURE if m.startswith("core/")])
def test_core_module_imports_at_the_top_only(module):
    """A function-level import hides a cycle (plan ↔ risk was one): core/ imports point down."""
    tree = ast.parse((SRC / f"{module}.py").read_text())
    late = [
        f"line {node.lineno}: {ast.unparse(node)}"
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert late == []


def test_only_the_journal_imports_sqlite():
    """journal/ is the only room that speaks SQL (STYLE.md, issue 15): others catch its errors
    as tradepipe.journal.STORAGE_ERRORS."""
    speaking = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.relative_to(SRC).parts[0] != "journal"
        and _imported(ast.parse(path.read_text())) & {"sqlite3", "sqlite_utils"}
    )
    assert speaking == []


def test_no_function_takes_an_untyped_config():
    """The config crosses every seam typed (tradepipe.config.model.Config), never as Any."""
    untyped = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for arg in [*node.args.args, *node.args.kwonlyargs]:
                    annotation = ast.unparse(arg.annotation) if arg.annotation else None
                    if arg.arg == "config" and annotation in (None, "Any"):
                        untyped.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert untyped == []
