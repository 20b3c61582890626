"""The layers hold (docs/architecture.md): `domain` is pure and imports nothing of mailhaul
outside itself; `adapters` never reach up into `services`, `web` or `cli`; no two service
modules import each other, not even around a longer cycle.

Imports are read from the source with `ast`: those at module level and inside functions
count, those under `if TYPE_CHECKING:` do not (they never run)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mailhaul

PACKAGE_DIR = Path(mailhaul.__file__).resolve().parent


@dataclass(frozen=True)
class Import:
    """Module ``source`` imports module ``target`` at ``line``."""

    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} (line {self.line}) imports {self.target}"


def module_names(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(nodes: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, nested ones included, except the bodies of TYPE_CHECKING blocks."""
    for node in nodes:
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _statements(node.orelse)
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _statements([child])
            elif isinstance(child, ast.ExceptHandler | ast.match_case):
                yield from _statements(child.body)


def imports_of(module: str, source: str, is_package: bool, known: set[str]) -> list[Import]:
    """The mailhaul modules ``module`` imports at run time. ``from P import N`` is module P.N
    when that is a module (in ``known``), else P."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in _statements(ast.parse(source).body):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append(Import(module, candidate if candidate in known else base, node.lineno))
    root = mailhaul.__name__
    return [i for i in found if i.target == root or i.target.startswith(root + ".")]


def all_imports() -> list[Import]:
    modules = module_names()
    known = set(modules)
    found = []
    for name, path in modules.items():
        found += imports_of(name, path.read_text(), path.name == "__init__.py", known)
    return found


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), and the modules
    that import themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def service_imports() -> list[Import]:
    """The imports of one service module by another (the package itself holds nothing)."""
    return [
        i
        for i in all_imports()
        if within(i.source, "mailhaul.services")
        and within(i.target, "mailhaul.services")
        and i.target != "mailhaul.services"
    ]


# --- the rules ----------------------------------------------------------------------------------


def test_domain_imports_nothing_of_mailhaul_outside_the_domain():
    found = all_imports()
    outside = [
        str(i)
        for i in found
        if within(i.source, "mailhaul.domain") and not within(i.target, "mailhaul.domain")
    ]
    assert not outside, "\n".join(outside)
    # Positive control: the reader does see the domain's own imports.
    assert any(within(i.source, "mailhaul.domain") for i in found)


def test_adapters_never_import_services_web_or_cli():
    upper = ("mailhaul.services", "mailhaul.web", "mailhaul.cli")
    found = all_imports()
    upward = [
        str(i)
        for i in found
        if within(i.source, "mailhaul.adapters") and any(within(i.target, p) for p in upper)
    ]
    assert not upward, "\n".join(upward)
    assert any(within(i.source, "mailhaul.adapters") for i in found)


def test_no_two_service_modules_import_each_other():
    edges: dict[str, set[str]] = {}
    for i in service_imports():
        edges.setdefault(i.source, set()).add(i.target)
    assert not cycles(edges), f"service modules importing each other: {cycles(edges)}"
    # Positive control: service modules do import one another (one way), and the reader sees it.
    assert edges


# --- the reader itself can fail -----------------------------------------------------------------

SAMPLE = """
from __future__ import annotations
import os
from typing import TYPE_CHECKING
import mailhaul.domain.errors
from mailhaul.services import polling
from . import sibling
from ..web import app

if TYPE_CHECKING:
    from mailhaul.cli import main

def later():
    from mailhaul.bootstrap import App
    try:
        import mailhaul.settings
    except ImportError:
        import mailhaul.settings_keys
"""


def test_the_reader_finds_module_function_and_relative_imports_but_not_type_checking_ones():
    known = {"mailhaul.services.polling", "mailhaul.adapters.sibling"}
    found = imports_of("mailhaul.adapters.tls", SAMPLE, False, known)
    assert {i.target for i in found} == {
        "mailhaul.domain.errors",
        "mailhaul.services.polling",
        "mailhaul.adapters.sibling",
        "mailhaul.web",
        "mailhaul.bootstrap",
        "mailhaul.settings",
        "mailhaul.settings_keys",
    }


def test_cycles_finds_mutual_longer_and_self_imports_and_nothing_in_a_chain():
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
