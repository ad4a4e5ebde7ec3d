"""The package's layers: imports point one way only, no module imports its importers, viewers load no Keras."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "xsearch.common": set(),
    "xsearch.model": {"xsearch.common"},
    "xsearch.data": {"xsearch.common"},
    "xsearch.deploy": {"xsearch.common", "xsearch.model"},
    "xsearch.study": {"xsearch.common", "xsearch.model", "xsearch.data", "xsearch.deploy"},
    "xsearch.results": {
        "xsearch.common",
        "xsearch.model",
        "xsearch.data",
        "xsearch.deploy",
        "xsearch.study",
    },
    "xsearch.run": {
        "xsearch.common",
        "xsearch.model",
        "xsearch.data",
        "xsearch.deploy",
        "xsearch.study",
        "xsearch.results",
    },
    "xsearch.optuna": {"xsearch.common", "xsearch.model", "xsearch.study"},
    "xsearch.keras_tuner": {"xsearch.common", "xsearch.model", "xsearch.study"},
    "dashboards": {"xsearch.common", "xsearch.model", "xsearch.study", "xsearch.results"},
    "xsearch.cli": {
        "xsearch.common",
        "xsearch.model",
        "xsearch.data",
        "xsearch.deploy",
        "xsearch.study",
        "xsearch.results",
        "xsearch.run",
        "dashboards",
    },
    "xsearch": {"xsearch.model"},  # the package's lazy public names
}
"""Each layer and the layers it may import (besides itself)."""


def _modules() -> dict[str, Path]:
    paths = [*ROOT.joinpath("xsearch").rglob("*.py"), *ROOT.joinpath("dashboards").rglob("*.py")]
    names = {}
    for path in paths:
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _layer(module: str) -> str:
    """The layer a module belongs to: its subpackage, or itself for a top-level module."""
    parts = module.split(".")
    if parts[0] == "dashboards":
        return "dashboards"
    return ".".join(parts[:2])


def _imports(path: Path, package: str) -> set[str]:
    """Modules of xsearch and dashboards that a file imports, anywhere in it (lazy imports too), except
    under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    found = set()
    skipped = {
        id(node)
        for stmt in ast.walk(tree)
        if isinstance(stmt, ast.If) and getattr(stmt.test, "id", None) == "TYPE_CHECKING"
        for node in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in ("xsearch", "dashboards")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        graph[name] = {
            imported
            for imported in _imports(path, package)
            if imported in modules and imported != name
        }
    return graph


def test_every_module_belongs_to_a_layer():
    assert {_layer(module) for module in _modules()} <= set(ALLOWED)


def test_imports_point_one_way():
    wrong = sorted(
        f"{module} imports {imported}"
        for module, targets in _graph().items()
        for imported in targets
        if _layer(imported) != _layer(module) and _layer(imported) not in ALLOWED[_layer(module)]
    )
    assert wrong == []


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    """Import cycles, each as "a -> b -> a"."""
    cycles, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        for imported in sorted(graph[module]):
            if imported in path:
                cycles.append(" -> ".join([*path[path.index(imported) :], imported]))
            elif imported not in done:
                visit(imported, [*path, imported])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return cycles


def test_no_module_imports_one_that_imports_it_back():
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    graph = _graph()
    graph["xsearch.study.record"] = graph["xsearch.study.record"] | {"xsearch.run.runner"}
    assert any(
        cycle.startswith("xsearch.study.record") or "xsearch.study.record -> " in cycle
        for cycle in _cycles(graph)
    )


def test_the_viewers_load_no_deep_learning_backend():
    code = (
        "import sys, xsearch.results.report, xsearch.results.figures, xsearch.study.storage, dashboards.server; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert loaded.stdout.strip() == "[]"
