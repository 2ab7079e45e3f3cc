"""The layout of the package, checked from its source (README "How the code is laid out").

Every module's imports are read with ``ast``, those inside functions included (a lazy import
is still a dependency) and ``if TYPE_CHECKING:`` blocks skipped (annotations only). The rules:
no import cycle; libraries never import ``commands/`` or ``cli/``; a command imports no other
command, except ``tune_oii``, which trains and predicts through ``train`` and ``infer``; every
subcommand of ``tinyseg`` has its package ``commands/<name>/`` with a ``cli.py``; no module
over 500 lines.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tinyseg_cli"
MAX_LINES = 500
# The one command that runs others: each tune-oii step is a train -> infer -> score run.
ALLOWED_COMMAND_IMPORTS = {"tune_oii": {"train", "infer"}}


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. tinyseg_cli.commands.score.cli
    path: Path
    is_package: bool  # an __init__.py


@cache
def modules(root: Path = PACKAGE) -> dict[str, Module]:
    """Every module of the package under ``root``, by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = Module(".".join(parts), path, is_package)
    return found


def _resolve(name: str, known: dict[str, Module]) -> str | None:
    """The module that ``name`` (a module, or a name inside one) belongs to."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return None


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_names(module: Module) -> list[tuple[str, int]]:
    """Absolute dotted names ``module`` imports (anywhere in it), with their line numbers."""
    names: list[tuple[str, int]] = []
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                for other in child.orelse:  # `else:` of a TYPE_CHECKING block runs
                    visit_node(other)
                continue
            visit_node(child)

    def visit_node(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            names.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                names.append((f"{base}.{alias.name}", node.lineno))
        visit(node)

    visit(ast.parse(module.path.read_text(encoding="utf-8"), str(module.path)))
    return names


def import_graph(root: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """Module → {module of the package it imports: first line}."""
    known = modules(root)
    graph: dict[str, dict[str, int]] = {}
    for name, module in known.items():
        edges: dict[str, int] = {}
        for imported, line in imported_names(module):
            target = _resolve(imported, known)
            if target is not None and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _layer(name: str) -> tuple[str, str | None]:
    """('cli', None), ('commands', <command>) or ('library', None) of a module."""
    parts = name.split(".")
    if len(parts) > 1 and parts[1] == "cli":
        return "cli", None
    if len(parts) > 1 and parts[1] == "commands":
        return "commands", parts[2] if len(parts) > 2 else None
    return "library", None


def layer_violations(graph: dict[str, dict[str, int]]) -> list[str]:
    """Imports that break the layering: a library reaching up into commands/ or cli/, or a
    command reaching into another command's package."""
    known = modules()
    problems = []
    for name, edges in sorted(graph.items()):
        layer, command = _layer(name)
        if name.endswith("__main__"):  # `python -m tinyseg_cli` runs the CLI
            continue
        for target, line in sorted(edges.items()):
            target_layer, target_command = _layer(target)
            where = f"{known[name].path.relative_to(PACKAGE.parent)}:{line}"
            if layer == "library" and target_layer != "library":
                problems.append(f"{where}: library {name} imports {target}")
            elif (
                layer == "commands"
                and target_layer == "commands"
                and command is not None
                and target_command not in (None, command)
                and target_command not in ALLOWED_COMMAND_IMPORTS.get(command, set())
            ):
                problems.append(f"{where}: command {command} imports command {target_command}")
    return problems


def subcommands(root: Path = PACKAGE) -> list[str]:
    """The names of ``COMMANDS`` in ``cli/main.py`` (read from the source, not imported)."""
    tree = ast.parse((root / "cli" / "main.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "COMMANDS" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise AssertionError("cli/main.py defines no COMMANDS")


def test_the_architecture_reader_sees_function_level_imports_and_skips_type_checking(
    tmp_path: Path,
):
    """The reader itself, on a package made for it: a cycle hidden in a function is found,
    one through a TYPE_CHECKING block is not."""
    root = tmp_path / "tinyseg_cli"
    (root / "io").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "io" / "__init__.py").write_text("")
    (root / "io" / "a.py").write_text("from tinyseg_cli.io.b import f\n")
    (root / "io" / "b.py").write_text("def f():\n    from tinyseg_cli.io import a\n")
    (root / "io" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tinyseg_cli.io import a\n"
    )
    (root / "io" / "d.py").write_text("from . import c\nfrom .a import f\n")
    graph = import_graph(root)
    assert graph["tinyseg_cli.io.a"] == {"tinyseg_cli.io.b": 1}
    assert graph["tinyseg_cli.io.b"] == {"tinyseg_cli.io.a": 2}
    assert graph["tinyseg_cli.io.c"] == {}
    assert graph["tinyseg_cli.io.d"] == {"tinyseg_cli.io.c": 1, "tinyseg_cli.io.a": 2}
    assert cycles(graph) == [["tinyseg_cli.io.a", "tinyseg_cli.io.b"]]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_libraries_import_no_command_and_commands_import_no_other_command():
    problems = layer_violations(import_graph())
    assert not problems, "\n".join(problems)


def test_every_subcommand_has_its_package():
    missing = [
        name
        for name in subcommands()
        if not (PACKAGE / "commands" / name.replace("-", "_") / "cli.py").is_file()
    ]
    assert not missing, f"subcommands without commands/<name>/cli.py: {', '.join(missing)}"
    packages = sorted(
        path.name
        for path in (PACKAGE / "commands").iterdir()
        if path.is_dir() and (path / "__init__.py").is_file()
    )
    listed = sorted(name.replace("-", "_") for name in subcommands())
    assert packages == listed, f"commands/ holds {packages}; tinyseg lists {listed}"


def test_no_module_over_500_lines():
    long = {
        str(module.path.relative_to(PACKAGE.parent)): count
        for module in modules().values()
        if (count := len(module.path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
