"""Rules of the code that a reader would otherwise have to police: no function in
`mailhaul.services` takes more than 5 parameters (``self``/``cls`` not counted; keyword-only
ones, ``*args`` and ``**kwargs`` counted). More go into a small frozen dataclass named for
what it holds (`PollLimits`, `UserChanges`, …).

Read from the source with `ast`, so nested functions and methods count too."""

from __future__ import annotations

import ast
from pathlib import Path

import mailhaul

SERVICES_DIR = Path(mailhaul.__file__).resolve().parent / "services"
MAX_PARAMETERS = 5


def parameter_count(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The parameters of ``function`` without a leading ``self`` or ``cls``."""
    arguments = function.args
    names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names) + (arguments.vararg is not None) + (arguments.kwarg is not None)


def too_many_parameters(source: str, where: str) -> list[str]:
    """``where:line name (n parameters)`` for each function of ``source`` over the limit."""
    return [
        f"{where}:{node.lineno} {node.name} ({parameter_count(node)} parameters)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and parameter_count(node) > MAX_PARAMETERS
    ]


def test_no_service_function_takes_more_than_five_parameters():
    modules = sorted(SERVICES_DIR.rglob("*.py"))
    assert len(modules) > 10  # the reader does find the services
    found = [
        problem for path in modules for problem in too_many_parameters(path.read_text(), path.name)
    ]
    assert not found, "more than 5 parameters (group them in a frozen dataclass):\n" + "\n".join(
        found
    )


SAMPLE = """
class Service:
    def five(self, a, b, c, d, e): ...
    def six(self, a, b, c, d, *, e, f): ...
    @classmethod
    def made(cls, a, b, c, d, e): ...

def rest(a, b, c, *args, **kwargs): ...
async def waits(a, b, c, d, e, f): ...
def outer():
    def inner(a, b, c, d, e, f): ...
"""


def test_the_reader_counts_keyword_only_and_star_parameters_but_not_self():
    assert sorted(too_many_parameters(SAMPLE, "sample.py")) == [
        "sample.py:11 inner (6 parameters)",
        "sample.py:4 six (6 parameters)",
        "sample.py:9 waits (6 parameters)",
    ]
    rest = next(n for n in ast.parse(SAMPLE).body if isinstance(n, ast.FunctionDef))
    assert parameter_count(rest) == 5
