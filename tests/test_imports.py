"""No import cycle inside ``gen_lightning``, and the studies package depends one way.

The import graph is read from the source with ``ast`` (nothing is imported). Its edges are every ``import`` and
``from ... import`` statement anywhere in a file: at module level, inside functions and classes, and under
``if TYPE_CHECKING:`` (a deferred import hides a cycle from Python, not from the design). Relative imports are
resolved. ``import a.b.c`` is an edge to ``a.b.c``; ``from a.b import c`` is an edge to ``a.b.c`` when that is a
module of the package, else to ``a.b`` (``c`` is then a name defined in ``a/b/__init__.py`` or ``a/b.py``).

Package ``__init__`` modules are nodes like any other, named after their package (``gen_lightning/studies/
__init__.py`` is ``gen_lightning.studies``), with the edges of their own imports. Importing ``a.b.c`` also runs
``a/__init__.py`` and ``a/b/__init__.py``; that implicit import is *not* counted as an edge: Python always starts a
package's ``__init__`` before any of its submodules, so an ``__init__`` that imports its own submodules to
re-export them cannot meet a half-initialised module through it. What can go wrong is a submodule importing names
from its package's ``__init__`` while that ``__init__`` imports the submodule; both imports are explicit edges, so
that cycle is reported.

A cycle is a strongly connected component of more than one module, or a module that imports itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gen_lightning

PACKAGE_ROOT = Path(gen_lightning.__file__).parent


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package at ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _targets(node: ast.Import | ast.ImportFrom, package: str, modules: dict[str, Path]) -> list[str]:
    """The modules of ``modules`` that one import statement in a module of ``package`` names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # from . import x / from ..y import z
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([node.module] if node.module else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    out = []
    for name in names:
        while name and name not in modules:  # import a.b.c where only a.b is ours (or nothing is)
            name = name.rpartition(".")[0]
        if name:
            out.append(name)
    return out


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first such import}, within ``modules``."""
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, package, modules):
                    line = graph[name].get(target, node.lineno)
                    graph[name][target] = min(line, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module, and self-importing modules (Tarjan, 1972)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        order[v] = low[v] = len(order)
        stack.append(v)
        for w in graph[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in order:
            visit(v)
    return sorted(found)


def describe(component: list[str], graph: dict[str, dict[str, int]], modules: dict[str, Path]) -> str:
    """The imports that make up one cycle, each with its file and line."""
    root = modules[min(modules, key=len)].parent.parent  # above the top package's __init__.py
    edges = [
        f"    {a} -> {b}  ({modules[a].relative_to(root)}:{line})"
        for a in component
        for b, line in sorted(graph[a].items())
        if b in component
    ]
    return f"  cycle between {', '.join(component)}:\n" + "\n".join(edges)


def test_no_import_cycle_in_gen_lightning():
    modules = module_files(PACKAGE_ROOT)
    assert "gen_lightning.studies.spec" in modules and "gen_lightning.cli" in modules  # the walk found the package
    graph = import_graph(modules)
    found = cycles(graph)
    assert not found, "import cycles in gen_lightning (make the dependency go one way):\n" + "\n".join(
        describe(c, graph, modules) for c in found
    )


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_cycles_are_found_through_function_level_relative_and_package_imports(tmp_path):
    pkg = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.values import one\nfrom pkg.uses_init import two\n",
            "pkg/values.py": "one = 1\n",  # re-exported by the __init__: not a cycle
            "pkg/uses_init.py": "from pkg import one\ntwo = one + 1\n",  # pkg <-> pkg.uses_init
            "pkg/selfish.py": "def f():\n    import pkg.selfish\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/a.py": "def f():\n    from pkg.sub import b\n    return b\n",  # a submodule by from-import
            "pkg/sub/b.py": "from . import a\n",  # relative
            "pkg/sub/c.py": "from ..values import one\nimport os\n",  # relative upwards; outside imports ignored
        },
    )
    modules = module_files(pkg)
    graph = import_graph(modules)
    assert graph["pkg.sub.c"] == {"pkg.values": 1}
    assert graph["pkg"] == {"pkg.values": 1, "pkg.uses_init": 2}
    assert cycles(graph) == [["pkg", "pkg.uses_init"], ["pkg.selfish"], ["pkg.sub.a", "pkg.sub.b"]]
    text = describe(["pkg.sub.a", "pkg.sub.b"], graph, modules)
    assert "pkg.sub.a -> pkg.sub.b  (pkg/sub/a.py:2)" in text and "pkg.sub.b -> pkg.sub.a  (pkg/sub/b.py:1)" in text


# Each module of gen_lightning.studies imports only modules of earlier layers (docs in studies/__init__.py).
STUDY_LAYERS = [["spec"], ["plan"], ["index"], ["launch", "hydra_launcher", "evaluations"], ["jobs"], ["report"],
                ["command"]]  # fmt: skip
REPORT = STUDY_LAYERS.index(["report"])


def study_layer(module: str) -> int:
    first = module.removeprefix("gen_lightning.studies.").split(".")[0]
    return next(i for i, layer in enumerate(STUDY_LAYERS) if first in layer)


def test_studies_depend_one_way():
    graph = import_graph(module_files(PACKAGE_ROOT))
    studies = sorted(m for m in graph if m.startswith("gen_lightning.studies."))
    assert not graph["gen_lightning.studies"], "studies/__init__.py stays light: it imports nothing"
    for module in studies:
        for target in graph[module]:
            if target.startswith("gen_lightning.studies."):
                same_report = module.startswith("gen_lightning.studies.report") and study_layer(target) == REPORT
                assert study_layer(target) < study_layer(module) or same_report, f"{module} imports {target}"
    users = {
        m
        for m, targets in graph.items()
        if not m.startswith("gen_lightning.studies") and any(t.startswith("gen_lightning.studies") for t in targets)
    }
    assert users == {"gen_lightning.cli"}, "only the command line uses the studies package"
    report_users = {m for m in studies if any(t.startswith("gen_lightning.studies.report.") for t in graph[m])}
    assert {m for m in report_users if not m.startswith("gen_lightning.studies.report")} == {
        "gen_lightning.studies.command"
    }
