"""The package's layers: each subpackage imports only the ones below it, nothing imports in a circle,
and nothing in `sentiment/` reaches up to the services or the tools built on it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.processes import ROOT

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

PACKAGE = ROOT / "sentiment"
# What each subpackage may import besides itself and the loose modules (settings, metrics, startup, drain).
ALLOWED = {
    "http": {"batching"},
    "cache": {"batching", "model"},
    "store": {"model"},
    "model": {"batching"},
    "batching": set(),
}
MAX_LOOSE_MODULES = 8


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Modules `path` imports, absolute, as far as they are this project's."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            prefix = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)  # `from pkg import module`
    local = {module_name(p) for p in ROOT.glob("*.py")} | {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in local or name.split(".")[0] in ("benchmark", "harness", "tests")}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str | None:
    """The subpackage a module of `sentiment` belongs to (None for a loose module)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def violations(imports: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, imported in imports.items():
        for target in imported:
            if not target.startswith("sentiment"):
                wrong.append(f"{module} imports {target}: the package never reaches up to the services or tools")
                continue
            source, dest = layer(module), layer(target)
            if dest is None or dest == source:
                continue
            if source is None:
                wrong.append(f"{module} (a loose module) imports {target}")
            elif dest not in ALLOWED[source]:
                wrong.append(f"{module} imports {target}: {source}/ may import only {sorted(ALLOWED[source])}")
    return wrong


def circle(imports: dict[str, set[str]]) -> list[str] | None:
    """One import circle among the package's modules, or None."""
    edges = {module: {t for t in targets if t in imports and t != module} for module, targets in imports.items()}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[module] = "done"
        return None

    for module in sorted(edges):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_subpackages_import_only_what_lies_below_them() -> None:
    wrong = violations(graph())
    assert not wrong, "\n".join(wrong)


def test_no_import_circles() -> None:
    found = circle(graph())
    assert found is None, "import circle: " + " -> ".join(found or [])


def test_a_handful_of_loose_modules() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= MAX_LOOSE_MODULES, loose
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} == set(ALLOWED)


def test_the_checks_see_an_upward_import_and_a_circle() -> None:
    imports = graph()
    imports["sentiment.batching.merging"] = {*imports["sentiment.batching.merging"], "sentiment.cache.keys"}
    assert violations(imports) == ["sentiment.batching.merging imports sentiment.cache.keys: batching/ may import only []"]
    imports["sentiment.metrics"] = {"sentiment.startup"}  # startup imports metrics
    assert circle(imports) in (["sentiment.metrics", "sentiment.startup", "sentiment.metrics"],
                               ["sentiment.startup", "sentiment.metrics", "sentiment.startup"])
    assert violations({"sentiment.metrics": {"service"}}) == [
        "sentiment.metrics imports service: the package never reaches up to the services or tools"
    ]
