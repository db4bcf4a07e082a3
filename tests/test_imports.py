"""The installed package's imports: no loop anywhere, and each room imports only what it may.

The source of every module of `gridwatch` is read with `ast`, function-level imports
included, so a loop hidden in a function body is found as well; imports under
`if TYPE_CHECKING:` count for the rooms' rules but not as loops (they never run). A room
is a subpackage (`gridwatch.store`) or a top-level module (`gridwatch.cli`); an outside
package is a room of its own by its top-level name (`fastapi`).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "gridwatch"


def _rooms(*names: str) -> set[str]:
    return {f"{PACKAGE}.{name}" for name in names}


# The floor: what every room may import (the package itself holds only its version).
FLOOR = {PACKAGE} | _rooms("errors", "settings", "encodings")

# room → the gridwatch rooms its modules may import besides itself: README's layout table,
# bottom up. A room not listed (the roof: the CLI, its command modules, the demo and the
# services they compose) may import everything.
ROOM_MAY_IMPORT: dict[str, set[str]] = {
    "gridwatch.errors": set(),
    "gridwatch.settings": set(),
    "gridwatch.encodings": set(),
    "gridwatch.model": FLOOR,
    "gridwatch.geo": FLOOR | _rooms("model"),
    "gridwatch.alerts": FLOOR | _rooms("model"),
    "gridwatch.cases": FLOOR | _rooms("model"),
    "gridwatch.disputes": FLOOR | _rooms("model"),
    "gridwatch.media": FLOOR,
    "gridwatch.store": FLOOR | _rooms("model", "geo", "alerts", "cases", "disputes"),
    "gridwatch.imports": FLOOR | _rooms("model", "geo", "disputes", "store"),
    "gridwatch.ingest": FLOOR | _rooms("model", "geo", "cases", "disputes", "store"),
    "gridwatch.maps": FLOOR | _rooms("model", "geo"),
    "gridwatch.dispatch": FLOOR | _rooms("model", "alerts", "cases", "store", "ingest"),
    "gridwatch.api": FLOOR
    | _rooms("model", "geo", "cases", "disputes", "media", "store", "ingest", "maps"),
    "gridwatch.simulators": FLOOR
    | _rooms(
        "model", "geo", "alerts", "cases", "disputes", "store", "imports", "ingest", "dispatch"
    ),
}

# The pure rooms take data and return data: no web framework, database driver or broker.
_IO = {"fastapi", "starlette", "uvicorn", "psycopg", "psycopg_pool", "paho", "amqtt"}

# room → rooms (of gridwatch or outside) its modules must never import, whatever
# ROOM_MAY_IMPORT says.
ROOM_MUST_NOT_IMPORT: dict[str, set[str]] = {
    "gridwatch.model": _IO,
    "gridwatch.geo": _IO,
    "gridwatch.alerts": _IO,
    "gridwatch.cases": _IO,
    "gridwatch.disputes": _IO,
    "gridwatch.maps": _IO,
    "gridwatch.media": _IO,
    "gridwatch.store": _rooms("api", "ingest", "maps", "media") | {"fastapi", "starlette"},
}

# Rooms that break their rule for now, each with why (an xfail, strict, until it holds).
NOT_YET: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    """One import statement's target, as the module that holds it names it."""

    module: str  # the importing module
    target: str  # the deepest module (or outside package path) it names
    line: int
    typing_only: bool  # under `if TYPE_CHECKING:`: never runs


@functools.cache
def module_names(package: str = PACKAGE) -> tuple[str, ...]:
    """Every module of the installed package. An editable install serves its subpackages
    from folders of their own, so subpackages are also found through the imports that name
    them, not only by listing the package's folder."""
    seen: set[str] = set()
    pending = [package]
    while pending:
        name = pending.pop()
        spec = None if name in seen else importlib.util.find_spec(name)
        if spec is None:
            continue
        seen.add(name)
        for location in spec.submodule_search_locations or ():
            pending += [f"{name}.{m.name}" for m in pkgutil.iter_modules([location])]
        named = [i.target for i in imports_of(name) if i.target.startswith(package + ".")]
        pending += [parent for target in named for parent in _with_parents(target)]
    return tuple(sorted(seen))


def _with_parents(name: str) -> list[str]:
    """`a.b.c` → [a.b.c, a.b, a]: a module's packages hold modules of their own."""
    parts = name.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]


def source_path(name: str) -> Path:
    """The file module `name` is read from (finding it imports its parent packages)."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin, name
    return Path(spec.origin)


@functools.cache
def imports_of(name: str) -> tuple[Import, ...]:
    """The imports written anywhere in module `name`, each resolved to a module name."""
    path = source_path(name)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node, typing_only in _walk(tree, typing_only=False):
        if isinstance(node, ast.Import):
            found += [Import(name, a.name, node.lineno, typing_only) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, is_package, node.module, node.level)
            for alias in node.names:
                target = _deepest_module(f"{base}.{alias.name}", base)
                found.append(Import(name, target, node.lineno, typing_only))
    return tuple(found)


def _walk(node: ast.AST, typing_only: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node with whether it sits under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        yield child, typing_only
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for part in child.body:
                yield part, True
                yield from _walk(part, True)
            for part in child.orelse:
                yield part, typing_only
                yield from _walk(part, typing_only)
        else:
            yield from _walk(child, typing_only)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(name: str, is_package: bool, module: str | None, level: int) -> str:
    """The absolute name of `from .module import …` (`level` dots) written in `name`."""
    if not level:
        return module or ""
    parts = name.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (level - 1)]
    return ".".join([*anchor, module] if module else anchor)


@functools.cache
def _deepest_module(candidate: str, base: str) -> str:
    """`from base import x`: the module base.x when there is one, else base itself."""
    if not candidate.startswith(PACKAGE + "."):
        return base
    try:
        return candidate if importlib.util.find_spec(candidate) is not None else base
    except ModuleNotFoundError:
        return base


def room_of(name: str) -> str:
    """`gridwatch.store.hazards` → `gridwatch.store`; `fastapi.routing` → `fastapi`."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == PACKAGE else parts[0]


def import_graph(runtime_only: bool) -> dict[str, set[str]]:
    """module → the package's modules it imports (type-only imports left out if asked)."""
    modules = module_names()
    known = set(modules)
    return {
        name: {
            i.target
            for i in imports_of(name)
            if i.target in known and i.target != name and not (runtime_only and i.typing_only)
        }
        for name in modules
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One loop of the graph as [a, b, …, a], or None (depth-first, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def loops(graph: dict[str, set[str]]) -> list[str]:
    """One loop for each knot of the graph (the nodes that all reach one another), as
    "a → b → a (knot: a, b, c)", so a failure names every place to cut, not the first."""
    found = []
    remaining = dict(graph)
    while (cycle := find_cycle(remaining)) is not None:
        knot = _reaching_each_other(remaining, cycle[0])
        found.append(f"{' → '.join(cycle)} (knot: {', '.join(sorted(knot))})")
        remaining = {n: edges - knot for n, edges in remaining.items() if n not in knot}
    return found


def _reaching_each_other(graph: dict[str, set[str]], start: str) -> set[str]:
    """The nodes that `start` reaches and that reach `start`: its knot."""

    def reach(edges: dict[str, set[str]]) -> set[str]:
        seen, pending = {start}, [start]
        while pending:
            for nxt in edges.get(pending.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    pending.append(nxt)
        return seen

    backwards: dict[str, set[str]] = {}
    for node, edges in graph.items():
        for nxt in edges:
            backwards.setdefault(nxt, set()).add(node)
    return reach(graph) & reach(backwards)


def test_the_graph_sees_every_room_and_function_level_imports():
    # The walk itself: subpackages found (also under an editable install), and an import
    # inside a function body counted.
    modules = module_names()
    rooms = {room_of(m) for m in modules}
    assert {"gridwatch.store", "gridwatch.alerts", "gridwatch.api", "gridwatch.ingest"} <= rooms
    assert "gridwatch.cli" in modules
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    two_knots = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}}
    assert loops(two_knots) == ["a → b → a (knot: a, b)", "c → d → c (knot: c, d)"]
    in_functions = [
        i
        for m in modules
        for i in imports_of(m)
        if i.target.startswith(PACKAGE + ".") and _inside_function(m, i.line)
    ]
    assert in_functions, "no function-level import of gridwatch found: is the walk blind?"


def _inside_function(name: str, line: int) -> bool:
    tree = ast.parse(source_path(name).read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.lineno < line <= (node.end_lineno or node.lineno)
        for node in ast.walk(tree)
    )


def test_no_import_loop():
    found = loops(import_graph(runtime_only=True))
    assert not found, "import loops between modules:\n" + "\n".join(found)


def test_no_loop_between_rooms():
    # Imports point down: no room reaches itself through others, type-only imports included.
    rooms: dict[str, set[str]] = {}
    for name, targets in import_graph(runtime_only=False).items():
        room = room_of(name)
        rooms.setdefault(room, set()).update(room_of(t) for t in targets if room_of(t) != room)
    found = loops(rooms)
    assert not found, "import loops between rooms:\n" + "\n".join(found)


def layering_rules() -> list[object]:
    """One case per room with a rule; xfail (strict) while the room is in NOT_YET."""
    return [
        pytest.param(room, id=room, marks=_not_yet(room))
        for room in sorted(set(ROOM_MAY_IMPORT) | set(ROOM_MUST_NOT_IMPORT))
    ]


def _not_yet(room: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.xfail(strict=True, reason=NOT_YET[room])] if room in NOT_YET else []


@pytest.mark.parametrize("room", layering_rules())
def test_a_room_imports_only_what_it_may(room):
    may = ROOM_MAY_IMPORT.get(room)
    must_not = ROOM_MUST_NOT_IMPORT.get(room, set())
    wrong = set()
    for name in module_names():
        if room_of(name) != room:
            continue
        for found in imports_of(name):
            target_room = room_of(found.target)
            inside = target_room.startswith(PACKAGE + ".") or target_room == PACKAGE
            allowed = target_room not in must_not and (
                may is None or not inside or target_room in may | {room}
            )
            if not allowed:
                wrong.add(f"{name}:{found.line} imports {found.target}")
    assert not wrong, f"{room} may not import:\n" + "\n".join(sorted(wrong))
