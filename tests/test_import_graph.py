"""Imports go one way: no module of ``deepspot_sd`` imports one of a higher layer (docs/architecture.md).

Every module under ``src/deepspot_sd`` is parsed with :mod:`ast` (nothing is imported), and every import of a
``deepspot_sd`` module, at module level or inside a function, is checked against the layers below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "deepspot_sd"

#: Layers, lowest first; a module may import its own layer and the ones below. Top-level private modules
#: (``_logging``, ``_validation``, ``_detection``, ``_model_config``, ...) form the core; ``_cli``, ``_demo`` and
#: ``__main__`` the command line on top.
LAYERS: dict[str, int] = {
    "_core": 0,
    "datasets": 1,
    "pp": 1,
    "metrics": 1,
    "models": 2,
    "tl": 3,
    "io": 4,
    "pl": 4,
    "_cli": 5,
    "_demo": 5,
    "__main__": 5,
    "__init__": 5,  # the package's __init__ exposes every subpackage
}
#: Pairs of the same layer that must not import each other either.
FORBIDDEN_SIDEWAYS = {("pp", "datasets"), ("pp", "metrics"), ("metrics", "datasets"), ("metrics", "pp")}


def _unit(parts: tuple[str, ...]) -> str:
    """Layer unit of a module given as its parts below ``deepspot_sd``: a subpackage, or ``_core``."""
    if not parts:
        return "__init__"
    head = parts[0]
    if head in LAYERS:
        return head
    return "_core"


def _module_parts(path: Path, root: Path) -> tuple[str, ...]:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported_modules(path: Path, root: Path) -> list[tuple[int, tuple[str, ...]]]:
    """``(line, parts below deepspot_sd)`` of every deepspot_sd module the file imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_parts(path, root)
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name.split(".")
                if name[0] == "deepspot_sd":
                    found.append((node.lineno, tuple(name[1:])))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + tuple(node.module.split(".") if node.module else ())
            elif node.module and node.module.split(".")[0] == "deepspot_sd":
                target = tuple(node.module.split(".")[1:])
            else:
                continue
            if target:
                found.append((node.lineno, target))
            else:  # `from deepspot_sd import tl` / `from . import tl`
                found.extend((node.lineno, (alias.name,)) for alias in node.names)
    return found


def violations(root: Path = SRC) -> list[str]:
    """Every import of a higher layer (or a forbidden sideways one) under ``root``, as readable lines."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        src_unit = _unit(_module_parts(path, root))
        for line, target in _imported_modules(path, root):
            dst_unit = _unit(target)
            if dst_unit == src_unit:
                continue
            if LAYERS[dst_unit] > LAYERS[src_unit] or (src_unit, dst_unit) in FORBIDDEN_SIDEWAYS:
                bad.append(
                    f"{path.relative_to(root.parent)}:{line}: {src_unit} (layer {LAYERS[src_unit]}) imports "
                    f"deepspot_sd.{'.'.join(target)} ({dst_unit}, layer {LAYERS[dst_unit]})"
                )
    return bad


def test_every_subpackage_has_a_layer():
    subpackages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert subpackages <= set(LAYERS), f"give these subpackages a layer in LAYERS: {sorted(subpackages - set(LAYERS))}"


def test_imports_go_one_way():
    bad = violations()
    assert not bad, "imports against the layers (docs/architecture.md):\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("module", "statement"),
    [
        ("models/_pretrained.py", "from deepspot_sd.tl import enhance"),
        ("pp/_sdata.py", "from deepspot_sd.models import available_models"),
        ("_detection.py", "from . import tl"),
        ("models/_train.py", "    from ..tl._detect import detect_spots"),
    ],
)
def test_detects_an_upward_import(tmp_path, module, statement):
    """A copy of the package with one upward import added fails the check (the check can fail)."""
    copy = tmp_path / "deepspot_sd"
    for path in SRC.rglob("*.py"):
        dst = copy / path.relative_to(SRC)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    target = copy / module
    body = statement if not statement.startswith(" ") else "def _f():\n" + statement + "\n"
    target.write_text(target.read_text(encoding="utf-8") + "\n" + body + "\n", encoding="utf-8")
    bad = violations(copy)
    assert len(bad) == 1 and module in bad[0], bad
