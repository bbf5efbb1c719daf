"""The shape of the code, read from its imports: no circle, and the layers point one way.

Every import counts, lazy ones inside functions too (a circle through a lazy import is still a
circle a reader has to untangle); only imports under ``if TYPE_CHECKING:`` do not, since they
never run. The layers (docs/development.md, the module map):

    commands, cli  ->  domain (build, push, registry, creds, sign, config, doctor, store)
                   ->  tools (buildah, skopeo, cosign, the process runner)  ->  base
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BASE = {"errors", "log", "refs", "platforms", "scratch", "tls", "units", "gotemplate", "times"}
DOMAIN = {"build", "push", "registry", "creds", "sign", "config", "doctor", "store"}
TOP = {"commands", "cli", "__main__"}
LAYERS = {"base": 0, "tools": 1, "domain": 2, "top": 3}


def layer(module: str) -> str:
    """The layer of an ``idpwrap`` module, by its first name below the package."""
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else ""
    if first in BASE or first == "":
        return "base"
    if first == "tools":
        return "tools"
    if first in DOMAIN:
        return "domain"
    if first in TOP:
        return "top"
    raise AssertionError(
        f"{module} is in no layer: add it to BASE, DOMAIN or TOP here and to docs/development.md"
    )


def python_files(root: Path) -> dict[str, Path]:
    """Module name -> file. A package directory gives dotted names; a plain directory
    (scripts/) gives each file its stem, as a script's own ``sys.path`` sees it."""
    found: dict[str, Path] = {}
    if (root / "__init__.py").exists():
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            dotted = ".".join(path.relative_to(root.parent).with_suffix("").parts)
            found[dotted.removesuffix(".__init__")] = path
        return found
    for path in sorted(root.iterdir()):
        if path.suffix == ".py":
            found[path.stem] = path
        elif path.is_file() and not path.suffix:
            with path.open(encoding="utf-8", errors="replace") as handle:
                if "python" in handle.readline():
                    found[path.name] = path
    return found


def runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: not those under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(roots: list[Path]) -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for root in roots:
        modules.update(python_files(root))

    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        is_package = path.name == "__init__.py"
        for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(filter(None, (known(alias.name) for alias in node.names)))
                continue
            if node.level:
                parts = name.split(".")
                base = ".".join(parts[: len(parts) - node.level + (1 if is_package else 0)])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                target = f"{source}.{alias.name}"
                resolved = target if target in modules else known(source)
                if resolved:
                    targets.add(resolved)
        # A package's face importing its own parts is not a circle of logic; nor is a part
        # naming its package, which only runs the (tiny) face.
        graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                strong(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            strong(node)
    return found


def roots() -> list[Path]:
    return [
        path for path in (ROOT / "idpwrap", ROOT / "scripts", ROOT / "testing") if path.is_dir()
    ]


def test_no_import_circle_in_the_package_scripts_or_test_support():
    found = circles(import_graph(roots()))
    assert not found, "import circles: " + "; ".join(" <-> ".join(group) for group in found)


def test_layers_import_only_downwards():
    graph = import_graph([ROOT / "idpwrap"])
    upward = [
        f"{source} ({layer(source)}) imports {target} ({layer(target)})"
        for source, targets in sorted(graph.items())
        for target in sorted(targets)
        if LAYERS[layer(target)] > LAYERS[layer(source)]
    ]
    assert not upward, "imports against the layers: " + "; ".join(upward)


def test_package_faces_import_nothing():
    """``__init__.py`` files only say what their package is for, so importing one module of a
    package costs no more than that module (``idpwrap --version`` imports nothing at all)."""
    heavy = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "idpwrap").rglob("__init__.py"))
        if any(
            isinstance(node, ast.Import | ast.ImportFrom) and node.module != "__future__"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    ]
    assert not heavy, f"package faces with imports: {heavy}"


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_circles_are_found(graph, expected):
    assert circles(graph) == expected


def test_lazy_imports_count_and_type_checking_ones_do_not(tmp_path: Path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg import b\n")
    (package / "b.py").write_text(
        "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from pkg import a\n"
    )
    assert circles(import_graph([package])) == []
    (package / "b.py").write_text("from pkg.a import f\n")
    assert circles(import_graph([package])) == [["pkg.a", "pkg.b"]]
