"""No import circles in agent/, server/ or schema/ (issue 9).

Two checks. Statically: the graph of every import between project modules,
function-level ones included, is acyclic. A function-level import is fine for
start-up cost (the CLIs import heavy modules only in the command that needs
them), but one that closes a cycle only dodges the circle, so it counts like a
top-level one. Imports under `if TYPE_CHECKING:` never run, but a module naming
its caller's type is the same circle in the design, so a second check counts
them too. Dynamically: every module imports on its own in a fresh interpreter,
the way a circle would break first.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "schema", "server")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, type_only: bool) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, wherever it sits; with `type_only`, those
    under `if TYPE_CHECKING:` too."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if not type_only and isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.orelse:
                visit(stmt)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path],
               type_only: bool = False) -> set[str]:
    """The project modules `name` imports: `from pkg import sub` names the submodule
    when `sub` is one, the package itself otherwise."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), str(path)), type_only):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = package.split(".")
            base = base[:len(base) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            targets.add(sub if sub in modules else target)
    return {t for t in targets if t in modules and t != name}


def import_graph(type_only: bool = False) -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules, type_only) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None (iterative DFS, bounded by
    the graph's size)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_relative_and_package_imports_resolve_to_modules(tmp_path: Path) -> None:
    modules = {"agent": Path("agent/__init__.py"), "agent.wipe": Path(),
               "agent.keystore": Path(), "schema.lease": Path(), "schema": Path()}
    src = tmp_path / "keystore.py"
    src.write_text("from typing import TYPE_CHECKING\n"
                   "from schema import lease\nfrom . import wipe\n"
                   "if TYPE_CHECKING:\n    from .home import X\n"
                   "def f():\n    from .wipe import destroy_vault\n")
    assert imports_of("agent.keystore", src, modules) == {"schema.lease", "agent.wipe"}
    modules["agent.home"] = Path()
    assert imports_of("agent.keystore", src, modules, type_only=True) == {
        "schema.lease", "agent.wipe", "agent.home"}


def test_project_modules_import_each_other_without_a_circle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


# Circles through type-only imports that are tolerated (none since issue 9). A module
# listed here that no longer exists fails the test, so the list cannot go stale.
KNOWN_TYPE_ONLY_CIRCLES: set[tuple[str, str]] = set()


def test_no_circle_through_type_only_imports_either() -> None:
    modules = project_modules()
    stale = sorted(m for edge in KNOWN_TYPE_ONLY_CIRCLES for m in edge if m not in modules)
    assert not stale, f"remove {stale} from KNOWN_TYPE_ONLY_CIRCLES: the modules are gone"
    graph = import_graph(type_only=True)
    for source, target in KNOWN_TYPE_ONLY_CIRCLES:
        graph[source].discard(target)
    cycle = find_cycle(graph)
    assert cycle is None, "import circle (type-only imports counted): " + " -> ".join(cycle or [])


# Runs in a fresh interpreter: imports the top-level third-party packages the project
# uses, then forks once per project module; each child imports that one module while
# no project module is loaded, so a circle breaks there exactly as it would in an
# interpreter of its own. A top-level package is what the child's own first
# `import pkg` would load anyway, so preloading it hides nothing; it only saves each
# child the start-up and FastAPI/pydantic import cost (~0.5 s of CPU a module).
_IMPORT_ALONE = r"""
import importlib, json, os, sys, traceback
names, preload, project = json.loads(sys.argv[1])
for dep in preload:
    try:
        importlib.import_module(dep)
    except Exception:  # a module that needs it fails below, on its own
        pass
loaded = sorted(m for m in sys.modules if m.split(".")[0] in project)
assert not loaded, f"a third-party package imported project modules: {loaded}"
for name in names:
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            importlib.import_module(name)
        except BaseException:
            print(json.dumps(["error", name, traceback.format_exc().strip().splitlines()[-1]]))
            code = 1
        sys.stdout.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(["exit", name, os.waitstatus_to_exitcode(status)]), flush=True)
"""


def third_party_packages() -> list[str]:
    """Top-level names of every package the project imports that is not its own."""
    found: set[str] = set()
    for path in project_modules().values():
        for node in _imports(ast.parse(path.read_text(), str(path)), type_only=False):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif not node.level and node.module:
                found.add(node.module.split(".")[0])
    return sorted(found - set(PACKAGES) - {"__future__"})


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    # A module imported earlier would hide a circle that only breaks when this one
    # comes first: each module is imported in a forked child of an interpreter that
    # holds no project module (see _IMPORT_ALONE).
    names = sorted(project_modules())
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALONE,
         json.dumps([names, third_party_packages(), list(PACKAGES)])],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("[")]
    errors = {name: what for kind, name, what in report if kind == "error"}
    exits = [(name, code) for kind, name, code in report if kind == "exit"]
    failures = [f"{name}: {errors.get(name, f'exit {code}')}" for name, code in exits if code != 0]
    assert not failures, "\n".join(failures)
    assert [name for name, _ in exits] == names  # every module tried, each once


def test_route_modules_do_not_import_each_other() -> None:
    # One module per resource: what two of them share lives outside (server/answers.py,
    # server/deps.py), so a resource can be read, changed or removed on its own.
    routes = ROOT / "server" / "routes"
    names = {p.stem for p in routes.glob("*.py")} - {"__init__"}
    crossing = [f"{p.name}: {line.strip()}" for p in sorted(routes.glob("*.py"))
                for line in p.read_text(encoding="utf-8").splitlines()
                if line.startswith(("from .", "import ."))
                and not line.startswith("from ..")
                and (line.startswith("from . import")
                     or line.split()[1].lstrip(".").split(".")[0] in names)]
    assert crossing == []
