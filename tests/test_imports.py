"""The structure of the package, read statically: its import graph, what the figures modules may
import, module sizes, and that checking params files stays cheap (no torch).

The graph is built with `ast` from every module of `cotrepro/`; an edge A -> B means A holds an
`import`/`from` statement that loads the `cotrepro` module B. An import is MODULE-LEVEL when it
runs as the module is imported (at the top, or in a class body, `try` or `if` at the top; not in
a function body, and not under `if TYPE_CHECKING:`).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "cotrepro"
MAX_LINES = 400


# ---------------------------------------------------------------------------------------------
# The static import graph


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def library_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = library_modules()


@dataclass(frozen=True)
class Edge:
    source: str
    target: str  # a module of MODULES, or an outside top-level name ("torch")
    line: int
    module_level: bool


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.Module):
    """(node, module_level) for every Import / ImportFrom of a module."""
    out = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append((child, top))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.body:
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        out.append((sub, False))
                    else:
                        visit(sub, False)
                for sub in child.orelse:
                    visit(sub, top) if not isinstance(sub, (ast.Import, ast.ImportFrom)) else out.append((sub, top))
            else:
                visit(child, top)

    visit(tree, True)
    return out


def _resolve(name: str) -> str | None:
    """The library module `name` loads (the longest prefix that is a module), or None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def edges_of(name: str, path: Path) -> list[Edge]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    edges = []
    for node, top in _import_nodes(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                targets.append(sub if sub in MODULES else module)
        for target in targets:
            if target.split(".")[0] == "cotrepro":
                resolved = _resolve(target)
                if resolved is not None and resolved != name:
                    edges.append(Edge(name, resolved, node.lineno, top))
            else:
                edges.append(Edge(name, target.split(".")[0], node.lineno, top))
    return edges


EDGES = [e for name, path in MODULES.items() for e in edges_of(name, path)]


def graph(module_level_only: bool) -> dict[str, set[str]]:
    g: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in EDGES:
        if e.target in MODULES and (e.module_level or not module_level_only):
            g[e.source].add(e.target)
    return g


def find_cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path that returns to its start) per strongly connected component with one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:  # Tarjan; the graph is small, recursion is fine
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(component)

    for v in sorted(g):
        if v not in index:
            strongconnect(v)
    cycles = []
    for component in components:
        members = set(component)
        if len(component) == 1 and component[0] not in g[component[0]]:
            continue
        start = min(component)
        # breadth-first from start back to start inside the component: the shortest cycle through it
        previous: dict[str, str] = {}
        frontier = [start]
        found = None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(g[v] & members):
                    if w == start:
                        found = v
                        break
                    if w not in previous:
                        previous[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            frontier = nxt
        path = [start]
        v = found
        while v != start:
            path.insert(1, v)
            v = previous[v]
        cycles.append(path + [start])
    return cycles


def test_the_graph_reader_sees_imports_at_every_level():
    # the reader itself: known edges of the package, one module-level and one in a function
    top = {(e.source, e.target) for e in EDGES if e.module_level}
    inner = {(e.source, e.target) for e in EDGES if not e.module_level}
    assert ("cotrepro.steps", "cotrepro.params") in top
    assert ("cotrepro.plots", "cotrepro.stats") in top  # `from cotrepro import stats`
    assert ("cotrepro.plots", "cotrepro.findings") in inner
    assert ("cotrepro.evaluate", "torch") in inner
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_module_level_imports_have_no_cycle():
    cycles = find_cycles(graph(module_level_only=True))
    lines = {(e.source, e.target): e.line for e in EDGES if e.module_level}
    shown = ["  " + " -> ".join(f"{a} (line {lines[(a, b)]})" for a, b in zip(c, c[1:])) + f" -> {c[-1]}"
             for c in cycles]
    assert not cycles, "module-level import cycles:\n" + "\n".join(shown)


def test_no_experiment_module_imports_another():
    experiments = {m for m in MODULES if m.startswith("cotrepro.experiments.")}
    offenders = [f"{e.source} imports {e.target} (line {e.line}, "
                 f"{'module level' if e.module_level else 'in a function'})"
                 for e in EDGES if e.source in experiments and e.target in experiments]
    assert experiments, "no experiment modules found"
    assert not offenders, "\n".join(offenders)


TRAINING = {"cotrepro.train", "cotrepro.dpo", "cotrepro.generate", "cotrepro.models", "cotrepro.micro",
            "cotrepro.tiny", "cotrepro.evaluate"}
OUTSIDE = {"torch", "transformers", "trl", "peft"}


def forbidden_paths(module: str, g: dict[str, set[str]], outside: dict[str, set[str]]) -> list[str]:
    """Import chains from `module` (at any level, transitively) to training or model code."""
    seen, todo, via = {module}, [module], {module: [module]}
    bad = []
    while todo:
        v = todo.pop()
        if v in TRAINING and v != module:
            bad.append(" -> ".join(via[v]))
        bad += [f"{' -> '.join(via[v])} imports {h}" for h in sorted(OUTSIDE & outside.get(v, set()))]
        for w in sorted(g.get(v, ())):
            if w not in seen:
                seen.add(w)
                via[w] = via[v] + [w]
                todo.append(w)
    return sorted(set(bad))


def test_the_forbidden_path_search_finds_direct_and_indirect_imports():
    g = {"p": {"a"}, "a": {"cotrepro.train"}, "cotrepro.train": set()}
    assert forbidden_paths("p", g, {}) == ["p -> a -> cotrepro.train"]
    assert forbidden_paths("p", {"p": set()}, {"p": {"torch"}}) == ["p imports torch"]
    assert forbidden_paths("p", {"p": {"a"}, "a": set()}, {"a": {"numpy"}}) == []


@pytest.mark.parametrize("module", ["cotrepro.plots", "cotrepro.findings"])
def test_figures_modules_import_no_training_or_model_code(module):
    # transitively too: a library module they import may not pull training code in either
    outside: dict[str, set[str]] = {}
    for e in EDGES:
        if e.target not in MODULES:
            outside.setdefault(e.source, set()).add(e.target)
    bad = forbidden_paths(module, graph(module_level_only=False), outside)
    assert not bad, "\n".join(bad)


def test_no_library_module_is_longer_than_the_limit():
    lengths = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    offenders = sorted((n, f"{MODULES[m].relative_to(REPO)}") for m, n in lengths.items() if n > MAX_LINES)
    assert not offenders, f"modules over {MAX_LINES} lines: " + ", ".join(f"{p} ({n})" for n, p in offenders)


# ---------------------------------------------------------------------------------------------
# Checking params is cheap


def test_loading_every_micro_and_smoke_params_file_imports_no_torch():
    code = textwrap.dedent("""
        import json, sys, time
        started = time.perf_counter()
        from cotrepro import steps
        files = [f for scale in ("micro", "smoke") for f in steps.params_files(scale)]
        for f in files:
            steps.load(f)
        print(json.dumps({"seconds": time.perf_counter() - started, "files": len(files),
                          "torch": "torch" in sys.modules,
                          "heavy": sorted(m for m in sys.modules if m.split(".")[0] in
                                          ("torch", "transformers", "trl", "peft"))[:5]}))
    """)
    wall = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - wall
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["files"] >= 18
    assert not report["torch"], f"loading params imported {report['heavy']}"
    assert report["seconds"] < 3, f"loading {report['files']} params files took {report['seconds']:.1f} s"
    assert wall < 10  # the interpreter start included, generously (the machine is shared)


def test_validate_prints_one_ok_line_per_micro_file():
    cli = Path(sys.executable).parent / "cotrepro"
    assert cli.is_file(), f"no console script at {cli}"
    files = sorted((REPO / "params" / "micro").glob("*.yaml"))
    assert files
    done = subprocess.run([str(cli), "validate", *[str(f.relative_to(REPO)) for f in files]], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(files), done.stdout
    for f, line in zip(files, lines):
        assert line.split()[:2] == ["ok", str(f.relative_to(REPO))], line
