"""The size and dependency limits of issue #10 on src/lantern: no source file over 500 lines,
no function over 80 lines, and no import cycle between lantern's top-level parts.

Read with ``ast`` (nothing of lantern is imported), so these run in well under a second.
An exception needs an entry in an allow-list below, with the reason beside it."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

SRC = REPO / "src" / "lantern"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80

#: files allowed over MAX_FILE_LINES (paths relative to src/lantern), each with its reason
LONG_FILES: dict[str, str] = {}
#: functions allowed over MAX_FUNCTION_LINES ("path:qualified name"), each with its reason
LONG_FUNCTIONS: dict[str, str] = {}


def _sources() -> dict[str, str]:
    return {path.relative_to(SRC).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(SRC.rglob("*.py"))}


def _file_lengths() -> dict[str, int]:
    return {name: len(text.splitlines()) for name, text in _sources().items()}


def _function_lengths() -> dict[str, int]:
    """``"path:Class.function"`` -> lines from ``def`` to the function's last line (nested
    functions are listed too, and count in their parent's length)."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str, name: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qualname = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    out[f"{name}:{qualname}"] = child.end_lineno - child.lineno + 1
                visit(child, qualname + ".", name)
            else:
                visit(child, prefix, name)

    for name, text in _sources().items():
        visit(ast.parse(text, name), "", name)
    return out


def test_no_source_file_over_the_limit():
    too_long = {name: n for name, n in _file_lengths().items()
                if n > MAX_FILE_LINES and name not in LONG_FILES}
    assert not too_long, f"files over {MAX_FILE_LINES} lines (split them): {too_long}"


def test_no_function_over_the_limit():
    too_long = {name: n for name, n in _function_lengths().items()
                if n > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split them): {too_long}"


def test_the_allow_lists_name_only_what_still_needs_them():
    # An entry whose file or function is back under the limit (or gone) must be removed, so
    # the lists never excuse more than what is really over.
    files, functions = _file_lengths(), _function_lengths()
    stale = ([f for f in LONG_FILES if files.get(f, 0) <= MAX_FILE_LINES]
             + [f for f in LONG_FUNCTIONS if functions.get(f, 0) <= MAX_FUNCTION_LINES])
    assert not stale, f"remove these allow-list entries: {stale}"


def _part_of(module: str) -> str | None:
    """The top-level part of lantern a dotted module name belongs to (``lantern.llm.cache``
    -> ``llm``), None outside lantern or for the package itself."""
    parts = module.split(".")
    return parts[1] if parts[0] == "lantern" and len(parts) > 1 else None


def _imported_modules(tree: ast.AST, package: str) -> set[str]:
    """Every module a file imports, at the top or inside functions (a function-level import
    still ties the two parts together); ``from lantern import x`` counts as ``lantern.x``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: resolved against the file's package
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            if module == "lantern":
                found.update(f"lantern.{alias.name}" for alias in node.names)
    return found


def _part_imports() -> dict[str, set[str]]:
    """Top-level part (subpackage or module) -> the other parts it imports."""
    graph: dict[str, set[str]] = {}
    for name, text in _sources().items():
        dotted = "lantern." + name.removesuffix(".py").replace("/", ".")
        package = dotted.removesuffix(".__init__") if name.endswith("__init__.py") else dotted.rpartition(".")[0]
        part = _part_of(dotted.removesuffix(".__init__"))
        if part is None:    # lantern/__init__.py
            continue
        targets = {_part_of(m) for m in _imported_modules(ast.parse(text, name), package)}
        graph.setdefault(part, set()).update(t for t in targets if t is not None and t != part)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_top_level_parts():
    graph = _part_imports()
    assert {"llm", "data", "cli"} <= graph.keys()   # the walk saw the package
    cycles = _cycles(graph)
    detail = {part: sorted(graph[part] & set(group)) for group in cycles for part in group}
    assert not cycles, f"import cycles between parts of lantern: {cycles} ({detail})"
