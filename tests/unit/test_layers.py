"""The import graph points down: no package imports one on a higher (or its sibling's) floor.

Floors, lowest first (the README's architecture section shows the same order):

0. ``core``                  settings, domain rules, row types, ids, time and event helpers
1. ``streams``               topic catalog, serde, producer/consumer, admin (registry client)
2. ``stores``                one owner per Cassandra table and Redis key family
3. ``models``                the ML ranker
4. ``topologies``, ``serving``  the dataflow's two leaves: writers and readers (never each other)
5. ``ops``                   local engine stack, platform start/stop, demo seed, lag
6. ``bench``                 benchmarks
7. ``feedstream``, ``k8s``   the CLI and deployment generators

Run it as a test, or ``python tests/unit/test_layers.py`` to print every import edge by floor.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOORS: list[tuple[str, ...]] = [
    ("core",), ("streams",), ("stores",), ("models",), ("topologies", "serving"), ("ops",),
    ("bench",), ("feedstream", "k8s"),
]
FLOOR = {pkg: i for i, pkgs in enumerate(FLOORS) for pkg in pkgs}


def import_edges(root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    """``(importer, imported) -> ["path:line module", ...]`` between the project's top-level packages."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for pkg in FLOOR:
        for path in sorted((root / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                else:
                    continue
                for mod in mods:
                    top = mod.split(".")[0]
                    if top in FLOOR and top != pkg:
                        edges[(pkg, top)].append(f"{path.relative_to(root)}:{node.lineno} {mod}")
    return edges


def upward(edges: dict[tuple[str, str], list[str]]) -> dict[tuple[str, str], list[str]]:
    """The edges that do not point to a strictly lower floor."""
    return {k: v for k, v in edges.items() if FLOOR[k[1]] >= FLOOR[k[0]]}


@pytest.mark.unit
def test_every_import_points_down() -> None:
    bad = upward(import_edges())
    lines = [f"{a} (floor {FLOOR[a]}) -> {b} (floor {FLOOR[b]}): {where}"
             for (a, b), wheres in sorted(bad.items()) for where in wheres]
    assert not bad, "upward imports:\n" + "\n".join(lines)


@pytest.mark.unit
def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    for pkg in FLOOR:
        (tmp_path / pkg).mkdir()
    (tmp_path / "stores" / "x.py").write_text("from topologies.fanout import logic\nimport core.feed\n")
    (tmp_path / "serving" / "y.py").write_text("def f():\n    import topologies.users\n")
    bad = upward(import_edges(tmp_path))
    assert set(bad) == {("stores", "topologies"), ("serving", "topologies")}


if __name__ == "__main__":
    all_edges = import_edges()
    for (a, b), wheres in sorted(all_edges.items(), key=lambda kv: (FLOOR[kv[0][0]], kv[0])):
        mark = "UP  " if FLOOR[b] >= FLOOR[a] else "down"
        print(f"{mark} {a} -> {b}: {len(wheres)}")
    n = len(upward(all_edges))
    print(f"{n} upward of {len(all_edges)} edges between top-level packages")
    sys.exit(1 if n else 0)
