"""The fast tier (`pytest -m "not slow"`) imports and uses every module of the package.

Read from the test files' `ast`, without running them: a module counts as covered when a test file
that has fast tests (not marked slow) imports it, and code that a fast test runs uses what was imported:
the fast test itself, or the fixtures, helpers and module-level constants it reaches in its file. An
import inside such code counts too. A package whose `__init__.py` holds only a docstring is covered
when one of its modules is (importing that module runs it).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("xsearch", "dashboards")


def package_modules() -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its own name)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _only_a_docstring(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def _is_slow_mark(node: ast.AST) -> bool:
    """`pytest.mark.slow` (or `mark.slow`), bare or called."""
    node = node.func if isinstance(node, ast.Call) else node
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "slow"
        and (
            (isinstance(node.value, ast.Attribute) and node.value.attr == "mark")
            or (isinstance(node.value, ast.Name) and node.value.id == "mark")
        )
    )


def _file_is_slow(tree: ast.Module) -> bool:
    """A module-level ``pytestmark`` that holds the slow mark."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            marks = (
                node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            )
            if any(_is_slow_mark(mark) for mark in marks):
                return True
    return False


def _test_functions(tree: ast.Module) -> list[tuple[ast.FunctionDef, bool]]:
    """The test functions (also in test classes) with whether each is marked slow as a whole.

    A test marked slow for some of its parameters only (``pytest.param(..., marks=pytest.mark.slow)``)
    has fast ones too, so it counts as fast.
    """
    tests = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            tests.append((node, any(_is_slow_mark(d) for d in node.decorator_list)))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            class_slow = any(_is_slow_mark(d) for d in node.decorator_list)
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name.startswith("test"):
                    tests.append(
                        (item, class_slow or any(_is_slow_mark(d) for d in item.decorator_list))
                    )
    return tests


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _longest_module(dotted: str, modules: set[str]) -> str | None:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def _bindings(node: ast.Import | ast.ImportFrom, modules: set[str]) -> dict[str, str]:
    """The names an import binds, each to the dotted path it stands for (module or module attribute)."""
    bound = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                bound[alias.asname] = alias.name
            else:  # `import a.b.c` binds `a`; uses spell the full chain
                bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
    elif node.module and not node.level:
        for alias in node.names:
            bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return {name: path for name, path in bound.items() if _longest_module(path, modules)}


def fast_tier_modules(source: str, modules: set[str]) -> set[str]:
    """The package modules that the fast tests of one test file (given as source) import and use."""
    tree = ast.parse(source)
    tests = _test_functions(tree)
    fast = [test for test, slow in tests if not slow]
    if _file_is_slow(tree) or not fast:
        return set()
    definitions: dict[str, list[ast.AST]] = {}
    roots: list[ast.AST] = list(fast)
    bindings: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bindings.update(_bindings(node, modules))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions.setdefault(node.name, []).append(node)
            if any("autouse" in ast.unparse(d) for d in getattr(node, "decorator_list", [])):
                roots.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        definitions.setdefault(name.id, []).append(node)
        # runs on import
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            roots.append(node)

    covered: set[str] = set()
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        referenced: set[str] = set()  # names used on their own
        chained: set[str] = set()  # names whose attributes are used
        parameters: set[str] = set()  # fixtures it requests: they shadow imports of the same name
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            parameters = {arg.arg for arg in node.args.args + node.args.kwonlyargs}
        inner: set[int] = set()  # the parts of an attribute chain already resolved as a whole
        for sub in ast.walk(node):  # breadth first: a chain before its parts
            if id(sub) in inner:
                continue
            if isinstance(sub, (ast.Import, ast.ImportFrom)):  # imported where a fast test runs it
                if isinstance(sub, ast.Import) or (sub.module and not sub.level):
                    for alias in sub.names:
                        path = (
                            alias.name
                            if isinstance(sub, ast.Import)
                            else f"{sub.module}.{alias.name}"
                        )
                        covered.add(_longest_module(path, modules))
            elif isinstance(sub, ast.Attribute) and (dotted := _dotted(sub)):
                root = dotted.split(".")[0]
                inner |= {id(part) for part in ast.walk(sub.value)}
                chained.add(root)
                if root in bindings and root not in parameters:
                    covered.add(_longest_module(bindings[root] + dotted[len(root) :], modules))
            elif isinstance(sub, ast.Name):
                referenced.add(sub.id)
        for name in referenced | chained | parameters:
            if name in bindings and name in referenced and name not in parameters:
                covered.add(_longest_module(bindings[name], modules))
            stack.extend(definitions.get(name, []))
    return covered - {None}


def covered_modules() -> set[str]:
    modules = package_modules()
    covered: set[str] = set()
    for path in sorted(ROOT.joinpath("tests").rglob("test_*.py")):
        covered |= fast_tier_modules(path.read_text(), set(modules))
    for (
        name,
        path,
    ) in modules.items():  # a docstring-only package runs when one of its modules is imported
        if (
            path.name == "__init__.py"
            and _only_a_docstring(path)
            and any(m.startswith(f"{name}.") for m in covered)
        ):
            covered.add(name)
    return covered


def test_every_package_module_is_imported_and_used_by_a_fast_test():
    missing = sorted(set(package_modules()) - covered_modules())
    assert not missing, (
        f"no fast test (one not marked slow) imports and uses {', '.join(missing)}: "
        "add one (fakes, synthetic studies, in-memory storage, tiny models) so that `pytest -m 'not slow'` covers it"
    )


def test_the_checker_tells_fast_from_slow_tests_and_follows_helpers_and_fixtures():
    modules = {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.e", "pkg.f", "pkg.sub", "pkg.sub.g"}
    source = """
import pytest
import pkg.sub.g
from pkg import b
from pkg.a import thing
from pkg.c import other as renamed
from pkg.d import unused
from pkg.e import only_slow
from pkg.f import by_fixture

CONSTANT = renamed(1)

def _helper():
    return b.call()

@pytest.fixture
def made():
    return by_fixture()

def test_fast(made):
    assert thing() and _helper() and CONSTANT and pkg.sub.g.value

@pytest.mark.slow
def test_slow():
    only_slow()
    from pkg import a

@pytest.mark.parametrize("x", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_partly_slow(x):
    from pkg.sub import g
"""
    assert fast_tier_modules(source, modules) == {"pkg.a", "pkg.b", "pkg.c", "pkg.f", "pkg.sub.g"}
    assert (
        fast_tier_modules("import pytest\npytestmark = pytest.mark.slow\n" + source, modules)
        == set()
    )
    only_slow = (
        "import pytest\nfrom pkg.a import thing\n@pytest.mark.slow\ndef test_slow():\n    thing()\n"
    )
    assert fast_tier_modules(only_slow, modules) == set()
