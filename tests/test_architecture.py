"""The package's layers: every import of ``src/reservoir_rl`` (module level and inside functions) points down
the layer table or stays inside its own package, and no modules import each other in a cycle.

Layers, top to bottom (a module may import from its own package and from the layers below its own)::

    0  cli, api
    1  commands
    2  training, evaluation, runs, tuning
    3  catalog, design
    4  env, agent, baselines, monitor
    5  config
    6  units, files, errors

A package is the first name under ``reservoir_rl`` (``reservoir_rl.env.physics`` belongs to ``env``); a
single module such as ``config.py`` is a package of its own. Imports between different packages of one
layer are allowed only as listed in `SAME_LAYER_ALLOWED`. The entry points ``reservoir_rl/__init__.py``,
``reservoir_rl/__main__.py`` and ``reservoir_rl/data`` (files, no code) belong to no layer.

The graph has one edge per imported module: ``import reservoir_rl.a.b``, ``from reservoir_rl.a import b``
(to ``a.b`` if it is a module, else to ``a``), ``from reservoir_rl import a`` and relative imports. The
parent packages that Python initialises on the way (``reservoir_rl/a/__init__.py`` for ``a.b``) are not
edges: a module importing its own package's siblings would otherwise always look like a cycle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import pytest

ROOT = "reservoir_rl"
SOURCE = Path(__file__).resolve().parents[1] / "src" / ROOT

LAYERS: dict[str, int] = {
    "cli": 0, "api": 0,
    "commands": 1,
    "training": 2, "evaluation": 2, "runs": 2, "tuning": 2,
    "catalog": 3, "design": 3,
    "env": 4, "agent": 4, "baselines": 4, "monitor": 4,
    "config": 5,
    "units": 6, "files": 6, "errors": 6,
}
# entry points and data: no layer, not checked (their imports still count for cycles)
EXEMPT = {ROOT, f"{ROOT}.__main__", f"{ROOT}.data"}

# (importing package, imported package) of one layer that may import each other, one way only
SAME_LAYER_ALLOWED: set[tuple[str, str]] = {
    # the trainer saves, rotates and links its checkpoints (runs.checkpoint) in the run's folder (runs.folders)
    ("training", "runs"),
    # the trainer's in-training evaluation is the greedy rollout and figures of `evaluate`
    # (evaluation.rollout.evaluate_policy, evaluation.figures): one implementation for both
    ("training", "evaluation"),
    # the operating rules and DP decide on the reservoir env's state with its physics and reward
    # (env.reservoir_env, env.physics, env.reward)
    ("baselines", "env"),
}

# Cycles tolerated (as their sets of modules): none. A cycle found is a failure.
KNOWN_CYCLES_TO_REMOVE: set[frozenset[str]] = set()


# ------------------------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Edge:
    importer: str  # dotted module name
    imported: str  # dotted module (or package) name
    file: Path  # relative to the package's parent folder: reservoir_rl/cli/app.py
    line: int


def module_name(path: Path, source: Path) -> str:
    """``source/a/b.py`` → ``reservoir_rl.a.b``; ``source/a/__init__.py`` → ``reservoir_rl.a``."""
    parts = [source.name, *path.relative_to(source).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(source: Path) -> dict[str, Path]:
    return {module_name(path, source): path for path in sorted(source.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path], source: Path) -> str:
    """``name`` if it is a module, package or folder of the source tree, else its parent (an attribute)."""
    if name in known or (source.parent / name.replace(".", "/")).is_dir():
        return name
    return name.rpartition(".")[0]


def import_edges(source: Path) -> list[Edge]:
    """Every import of the package in ``source`` (a folder named after the package) of one of its modules."""
    root = source.name
    known = _modules(source)
    edges: dict[Edge, None] = {}  # ordered, once per importer, imported module and line
    for importer, path in known.items():
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the importer's package, up level - 1 packages
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                targets = [_resolve(f"{module}.{alias.name}", known, source) for alias in node.names]
            for target in targets:
                if target == root or target.startswith(root + "."):
                    edges[Edge(importer, target, path.relative_to(source.parent), node.lineno)] = None
    return list(edges)


def package_of(module: str) -> Optional[str]:
    """The layer-table package of a module (``reservoir_rl.env.physics`` → ``env``); None for the root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _exempt(module: str, exempt: set[str]) -> bool:
    """``module`` is in ``exempt`` or inside a package of it (the root package holds every module: not that)."""
    return any(module == e or (e != ROOT and module.startswith(e + ".")) for e in exempt)


def layer_violations(edges: Iterable[Edge], layers: dict[str, int] = LAYERS, exempt: set[str] = EXEMPT,
                     allowed: set[tuple[str, str]] = SAME_LAYER_ALLOWED) -> list[str]:
    """One message per import against the layer table (or out of a module the table does not know)."""
    problems = []
    for edge in edges:
        if _exempt(edge.importer, exempt) or _exempt(edge.imported, exempt):
            continue
        mine, theirs = package_of(edge.importer), package_of(edge.imported)
        where = f"{edge.file}:{edge.line}: {edge.importer} imports {edge.imported}"
        unknown = [p for p in (mine, theirs) if p not in layers]
        if unknown:
            problems.append(f"{where}: package {unknown[0]!r} is in no layer (add it to LAYERS)")
        elif mine == theirs or layers[theirs] > layers[mine] or (mine, theirs) in allowed:
            continue
        elif layers[theirs] == layers[mine]:
            problems.append(f"{where}: {mine} and {theirs} are both in layer {layers[mine]}, and "
                            f"({mine!r}, {theirs!r}) is not in SAME_LAYER_ALLOWED")
        else:
            problems.append(f"{where}: layer {layers[mine]} ({mine}) imports from layer {layers[theirs]} ({theirs}) above it")
    return problems


def cycles(edges: Iterable[Edge]) -> list[frozenset[str]]:
    """Each group of modules that import each other, directly or through others (a strongly connected
    component of more than one module, or a module importing itself)."""
    graph = _graph(edges)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm; recursion depth ≤ the number of modules (~60)
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found, key=sorted)


def _graph(edges: Iterable[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    return graph


def shortest_cycle(component: frozenset[str], edges: Iterable[Edge]) -> list[str]:
    """A shortest cycle [a, ..., a] inside ``component`` through its first module by name (breadth first)."""
    graph = _graph(edges)
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for other in sorted(graph[node] & component):
            if other == start:
                return [*paths[node], start]
            if other not in paths:
                paths[other] = [*paths[node], other]
                queue.append(other)
    raise AssertionError(f"no cycle through {start}")  # cannot happen in a strongly connected component


def describe(component: frozenset[str], edges: list[Edge]) -> str:
    """The cycle and the lines of its imports; every module of the group if the cycle misses some."""
    cycle = shortest_cycle(component, edges)
    lines = {(e.importer, e.imported): e for e in edges}
    steps = [f"{lines[a, b].file}:{lines[a, b].line}" for a, b in zip(cycle, cycle[1:])]
    text = " → ".join(cycle) + f" (imports at {', '.join(steps)})"
    if len(component) > len(cycle) - 1:
        text += f"; the modules importing each other: {', '.join(sorted(component))}"
    return text


def unknown_cycles(edges: list[Edge], known: set[frozenset[str]] = KNOWN_CYCLES_TO_REMOVE) -> list[str]:
    """The cycles, described, except those whose group of modules is exactly one of ``known``."""
    return [describe(c, edges) for c in cycles(edges) if c not in known]


# ---------------------------------------------------------------------------------------- the package


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    assert (SOURCE / "__init__.py").is_file(), SOURCE
    return import_edges(SOURCE)


def test_every_package_is_in_a_layer() -> None:
    packages = {p.stem if p.is_file() else p.name for p in SOURCE.iterdir()
                if (p.suffix == ".py" or (p.is_dir() and any(p.rglob("*.py"))))}
    unplaced = packages - set(LAYERS) - {"__init__", "__main__", "data"}
    assert not unplaced, f"add these to LAYERS in {Path(__file__).name}: {sorted(unplaced)}"


def test_imports_follow_the_layers(edges) -> None:
    problems = layer_violations(edges)
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_no_import_cycles(edges) -> None:
    unknown = unknown_cycles(edges)
    assert not unknown, "modules importing each other:\n" + "\n".join(unknown)


def test_same_layer_allowances_go_one_way() -> None:
    both = {tuple(sorted(pair)) for pair in SAME_LAYER_ALLOWED if pair[::-1] in SAME_LAYER_ALLOWED}
    assert not both, f"packages allowed to import each other (a cycle between packages): {sorted(both)}"
    assert all(LAYERS[a] == LAYERS[b] and a != b for a, b in SAME_LAYER_ALLOWED)


def test_each_same_layer_allowance_is_used(edges) -> None:
    used = {(package_of(e.importer), package_of(e.imported)) for e in edges}
    assert not SAME_LAYER_ALLOWED - used, f"not needed any more: {sorted(SAME_LAYER_ALLOWED - used)}"


# ------------------------------------------------------------------------------------- the checker


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    source = tmp_path / ROOT
    for name, text in {"__init__.py": "", **files}.items():
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return source


def test_the_checker_reports_back_edges_cycles_and_unknown_packages(tmp_path: Path) -> None:
    source = _package(tmp_path, {
        "errors.py": "",
        "env/__init__.py": "from .physics import step\n",
        "env/physics.py": "from reservoir_rl.errors import UserError\n"
                          "def step():\n    from ..config import Config\n",  # fine: config is below env
        "config.py": "def f():\n    import reservoir_rl.env.physics\n",  # back edge, and a cycle with physics
        "cli/__init__.py": "",
        "cli/app.py": "from reservoir_rl.cli import render\n",
        "cli/render.py": "from . import app\nfrom reservoir_rl import commands\n",  # a cycle in one package
        "commands/__init__.py": "from reservoir_rl.cli.app import main\n",  # a back edge, a longer cycle
        "agent/q.py": "from reservoir_rl.monitor import live\n",  # same layer, not allowed
        "monitor/live.py": "",
        "extra.py": "import reservoir_rl.errors\n",  # in no layer
    })
    edges = import_edges(source)
    found = {(e.importer, e.imported) for e in edges}
    assert {("reservoir_rl.env", "reservoir_rl.env.physics"), ("reservoir_rl.env.physics", "reservoir_rl.config"),
            ("reservoir_rl.config", "reservoir_rl.env.physics"), ("reservoir_rl.cli.render", "reservoir_rl.cli.app"),
            ("reservoir_rl.cli.render", "reservoir_rl.commands"), ("reservoir_rl.agent.q", "reservoir_rl.monitor.live"),
            ("reservoir_rl.env.physics", "reservoir_rl.errors")} <= found

    problems = layer_violations(edges)
    assert len(problems) == 4, problems
    back = [p for p in problems if p.startswith("reservoir_rl/config.py:2: reservoir_rl.config imports reservoir_rl.env.physics")]
    assert back and "layer 5 (config) imports from layer 4 (env) above it" in back[0]
    assert any("__init__.py:1: reservoir_rl.commands imports reservoir_rl.cli.app: layer 1 (commands) imports "
               "from layer 0 (cli)" in p for p in problems)
    assert any("agent and monitor are both in layer 4" in p for p in problems)
    assert any("package 'extra' is in no layer" in p for p in problems)
    fewer = layer_violations(edges, allowed={("agent", "monitor")}, exempt={*EXEMPT, "reservoir_rl.extra"})
    assert len(fewer) == 2 and all("above it" in p for p in fewer)

    groups = [{"reservoir_rl.cli.app", "reservoir_rl.cli.render", "reservoir_rl.commands"},
              {"reservoir_rl.config", "reservoir_rl.env.physics"}]
    assert cycles(edges) == groups
    assert unknown_cycles(edges, known=set()) == [
        "reservoir_rl.cli.app → reservoir_rl.cli.render → reservoir_rl.cli.app (imports at reservoir_rl/cli/app.py:1, "
        "reservoir_rl/cli/render.py:1); the modules importing each other: reservoir_rl.cli.app, "
        "reservoir_rl.cli.render, reservoir_rl.commands",
        "reservoir_rl.config → reservoir_rl.env.physics → reservoir_rl.config (imports at reservoir_rl/config.py:2, "
        "reservoir_rl/env/physics.py:3)",
    ]
    # a known cycle is tolerated only while its group of modules is exactly the one listed
    assert len(unknown_cycles(edges, known={frozenset(groups[1])})) == 1
    assert len(unknown_cycles(edges, known={frozenset({"reservoir_rl.cli.app", "reservoir_rl.cli.render"})})) == 2


def test_a_longer_cycle_and_a_self_import_are_named(tmp_path: Path) -> None:
    source = _package(tmp_path, {
        "runs/a.py": "import reservoir_rl.runs.b\n",
        "runs/b.py": "from reservoir_rl.runs.c import x\n",
        "runs/c.py": "from . import a\nx = 1\n",
        "units.py": "import reservoir_rl.units\n",
    })
    edges = import_edges(source)
    assert [shortest_cycle(c, edges) for c in cycles(edges)] == [
        ["reservoir_rl.runs.a", "reservoir_rl.runs.b", "reservoir_rl.runs.c", "reservoir_rl.runs.a"],
        ["reservoir_rl.units", "reservoir_rl.units"],
    ]
    assert not layer_violations(edges)  # siblings of one package
