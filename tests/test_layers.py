"""The package's layers: dependencies point down only, and no module imports its way back up.

The graph is built with `ast` from every `import` in `migrate/`, those inside functions too
(the lazy imports that keep start-up fast are still dependencies). A cycle, or an import from
a lower layer into a higher one, fails with the modules that form it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "migrate"

# Highest first. A module may import modules of its own layer (without a cycle) or of any layer below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("commands",),
    ("overview",),
    ("snapshot", "checks", "guards", "compose"),
    ("report",),
    ("apply",),
    ("plan",),
    ("history",),
    ("database", "files"),
    ("settings", "tracks", "errors", "paths", "__init__"),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every project module `path` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("migrate"))
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the project writes absolute ones"
            base = node.module or ""
            if not base.startswith("migrate"):
                continue
            found.add(base)
            for alias in node.names:  # `from migrate import commands` names a module
                if (PACKAGE.parent / (base.replace(".", "/") + "/" + alias.name + ".py")).exists() or \
                        (PACKAGE.parent / base.replace(".", "/") / alias.name).is_dir():
                    found.add(f"{base}.{alias.name}")
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {target for target in _imports(path) if target in modules and target != name}
            for name, path in modules.items()}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module}: not in LAYERS; give its package a layer")


def test_every_module_has_a_layer_and_imports_only_downwards() -> None:
    upward = [f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
              for module, targets in _graph().items() for target in sorted(targets)
              if _layer(target) < _layer(module) and target != "migrate"]
    assert upward == []


def test_no_import_cycle() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target] if target in path else [module, target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_graph_sees_imports_inside_functions() -> None:
    """The lazy imports count: commands reaches apply only inside its functions."""
    assert "migrate.apply.run" in _graph()["migrate.commands"]
    assert "migrate.checks.preflight" in _graph()["migrate.commands"]


def test_database_and_apply_never_take_settings() -> None:
    """The narrow records: database/ gets a Target, apply/ RunOptions; neither knows Settings."""
    for package in ("database", "apply"):
        for path in (PACKAGE / package).glob("*.py"):
            tree = ast.parse(path.read_text())
            names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                     for alias in node.names}
            assert "Settings" not in names, f"{path.name} imports Settings"
            assert "load_settings" not in names, f"{path.name} loads settings"
