"""The codebase's shape: imports only run downward, stacks fit on a screen, functions stay short, every
module says what it is for, and the pre-commit hooks run the same checks as `make lint typecheck`."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app.py", "cdk_app", "deploy", "stacks", "services", "local", "bench", "tools", "tests")
MAX_STACK_MODULE_LINES = 200
MAX_FUNCTION_LINES = 60

# What each layer may not import: nothing runs back up.
FORBIDDEN_IMPORTS = {
    "cdk_app": ("app", "stacks", "deploy", "services", "local", "tests"),
    "stacks": ("app", "deploy", "services", "local", "tests"),
    "services": ("app", "cdk_app", "stacks", "deploy", "local", "tests", "bench"),
    "local": ("app", "cdk_app", "stacks", "deploy", "services", "tests", "bench"),
    "deploy": ("tests", "local"),
    "bench": ("tests",),
}
# The downward uses across layers that are allowed although the layer's top package is not: the stacks set
# (and the local stack) the variables the services read, by name; the local ALB routes as the deployed listener does.
ALLOWED = {"stacks": ("services.common.environment",), "local": ("services.common.environment", "cdk_app.routes")}

# Functions longer than MAX_FUNCTION_LINES, each with the reason it reads better whole.
LONG_FUNCTIONS: dict[str, str] = {}


def python_files(*tops: str) -> Iterator[Path]:
    for top in tops:
        path = ROOT / top
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*.py") if "node_modules" not in p.parts and "artifacts" not in p.parts)


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{relative(path)}:{node.lineno}: a relative import (the layer rules read absolute ones)"
            assert node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN_IMPORTS))
def test_no_import_runs_back_up(layer: str) -> None:
    offending = []
    for path in python_files(layer):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if any(module == allowed or module.startswith(allowed + ".") for allowed in ALLOWED.get(layer, ())):
                continue
            if top in FORBIDDEN_IMPORTS[layer]:
                offending.append(f"{relative(path)} imports {module}")
    assert not offending, "\n".join(offending)


def test_stack_modules_fit_on_a_screen() -> None:
    long = {relative(p): n for p in python_files("stacks") if (n := len(p.read_text().splitlines())) > MAX_STACK_MODULE_LINES}
    assert not long, f"over {MAX_STACK_MODULE_LINES} lines: {long}"


def _functions(path: Path) -> Iterator[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            yield f"{relative(path)}::{node.name}", node.end_lineno - node.lineno + 1


def test_functions_are_short_or_say_why() -> None:
    code = python_files("app.py", "cdk_app", "deploy", "stacks", "services", "local", "bench", "tools")
    long = {name: lines for path in code for name, lines in _functions(path) if lines > MAX_FUNCTION_LINES}
    unexplained = {name: lines for name, lines in long.items() if name not in LONG_FUNCTIONS}
    assert not unexplained, f"functions over {MAX_FUNCTION_LINES} lines without a reason in LONG_FUNCTIONS: {unexplained}"
    stale = sorted(set(LONG_FUNCTIONS) - set(long))
    assert not stale, f"LONG_FUNCTIONS names functions that are no longer long (or gone): {stale}"


def test_every_module_opens_with_its_job() -> None:
    missing = [
        relative(path)
        for path in python_files(*PACKAGES)
        if path.stat().st_size and ast.get_docstring(ast.parse(path.read_text())) is None and path.name != "__init__.py"
    ]
    assert not missing, f"modules without a docstring saying what they are for: {missing}"


def test_pre_commit_runs_the_lint_and_type_checks() -> None:
    config = YAML(typ="safe").load((ROOT / ".pre-commit-config.yaml").read_text())
    entries = [hook["entry"] for repo in config["repos"] for hook in repo["hooks"]]
    assert any("ruff check" in entry for entry in entries)
    assert any("ruff format" in entry for entry in entries)
    assert any("mypy" in entry for entry in entries)
    makefile = (ROOT / "Makefile").read_text()
    assert "ruff check ." in makefile and "ruff format --check ." in makefile and "mypy ." in makefile


def test_tests_mirror_the_services() -> None:
    services = {p.name for p in (ROOT / "services").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    mirrored = {p.name for p in (ROOT / "tests" / "services").iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    assert services == mirrored, f"services without a tests/services/<name>/ folder, or the reverse: {services ^ mirrored}"
    tiers = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    readme = (ROOT / "tests" / "README.md").read_text()
    unnamed = sorted(tier for tier in tiers if f"`tests/{tier}/`" not in readme)
    assert not unnamed, f"tests/README.md does not describe: {unnamed}"


def test_every_module_using_the_in_process_synth_runs_on_the_synthesizing_worker() -> None:
    """`tests/conftest.py` groups by path (the xdist controller sees node ids only): its list must name every test
    module outside `tests/stacks/` that takes more than constants from `tests.stacks.conftest` (its synth, the
    fixtures and helpers around it), and only those; the modules it orders or keeps together must exist."""
    from tests.conftest import IN_ORDER_MODULES, LONG_MODULES, MODULE_UNITS, SYNTH_MODULE, SYNTH_MODULES_ELSEWHERE

    def uses_synth(path: Path) -> bool:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(alias.name == SYNTH_MODULE for alias in node.names):
                return True
            if isinstance(node, ast.ImportFrom) and node.module == SYNTH_MODULE and any(not a.name.isupper() for a in node.names):
                return True
        return False

    modules = (p for p in (ROOT / "tests").rglob("test_*.py") if not p.is_relative_to(ROOT / "tests" / "stacks"))
    assert sorted(p.relative_to(ROOT).as_posix() for p in modules if uses_synth(p)) == sorted(SYNTH_MODULES_ELSEWHERE)
    for listed in (*IN_ORDER_MODULES, *LONG_MODULES, *MODULE_UNITS):
        assert (ROOT / listed).is_file(), listed


def test_every_module_with_a_costly_module_fixture_runs_on_one_worker() -> None:
    """A module whose tests drive a Chromium (it imports Playwright's `Browser` or the end-to-end `Site`, which holds
    the per-module one), or that starts an IdP or a stack in a module-scoped fixture, is one unit of
    `tests/conftest.py`'s scheduler: otherwise each worker would start its own."""
    from tests.conftest import MODULE_UNITS

    browser_names = {("playwright.sync_api", "Browser"), ("tests.e2e.conftest", "Site")}
    servers = ("IdpProcess", "DemoStack", "SharedStack")

    def module_scoped_fixture(node: ast.AST) -> bool:
        return isinstance(node, ast.FunctionDef) and any(
            isinstance(d, ast.Call) and any(k.arg == "scope" and ast.literal_eval(k.value) == "module" for k in d.keywords)
            for d in node.decorator_list
        )

    def costly(path: Path) -> bool:
        tree = ast.parse(path.read_text())
        nodes = list(ast.walk(tree))
        if any(isinstance(n, ast.ImportFrom) and any((n.module, a.name) in browser_names for a in n.names) for n in nodes):
            return True
        names = {n.id for n in nodes if isinstance(n, ast.Name)}
        return any(module_scoped_fixture(n) for n in nodes) and any(server in names for server in servers)

    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py") if costly(p))
    assert modules and [m for m in modules if m not in MODULE_UNITS] == []
