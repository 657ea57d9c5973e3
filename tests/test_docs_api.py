"""The API page lists every public name of every subpackage, and nothing that does not exist."""

from __future__ import annotations

import importlib
import re
import types
from pathlib import Path

import pytest

import deepspot_sd as dsd

API_MD = Path(__file__).resolve().parents[1] / "docs" / "api.md"
SUBPACKAGES = sorted(name for name in dsd.__all__ if isinstance(getattr(dsd, name, None), types.ModuleType))


def _public_names(subpackage: str) -> list[str]:
    """Names a subpackage exports: its ``__all__``, or its public non-module attributes without one."""
    module = importlib.import_module(f"deepspot_sd.{subpackage}")
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    ]


def _api_entries() -> set[tuple[str, str]]:
    """``(subpackage, name)`` of every autosummary entry ``   sub.name`` in docs/api.md."""
    text = API_MD.read_text(encoding="utf-8")
    subs = "|".join(map(re.escape, SUBPACKAGES))
    return set(re.findall(rf"^[ \t]+({subs})\.([A-Za-z_]\w*)[ \t]*$", text, flags=re.MULTILINE))


def test_subpackages_found():
    assert {"datasets", "metrics", "pp", "tl"} <= set(SUBPACKAGES)
    assert API_MD.is_file()


@pytest.mark.parametrize("subpackage", SUBPACKAGES)
def test_every_public_name_is_documented(subpackage):
    documented = {name for sub, name in _api_entries() if sub == subpackage}
    missing = sorted(set(_public_names(subpackage)) - documented)
    assert not missing, f"docs/api.md misses `{subpackage}.<name>` autosummary entries for: {missing}"


@pytest.mark.parametrize("subpackage", SUBPACKAGES)
def test_module_directive_present(subpackage):
    if not _public_names(subpackage):
        pytest.skip(f"deepspot_sd.{subpackage} exports nothing yet")
    text = API_MD.read_text(encoding="utf-8")
    found = re.search(rf"^\.\. module:: deepspot_sd\.{subpackage}[ \t]*$", text, flags=re.MULTILINE)
    assert found, f"docs/api.md has no `.. module:: deepspot_sd.{subpackage}` block"


def test_every_documented_name_exists():
    stale = sorted(
        f"{sub}.{name}"
        for sub, name in _api_entries()
        if name not in _public_names(sub) or not hasattr(getattr(dsd, sub), name)
    )
    assert not stale, f"docs/api.md lists names that are not exported: {stale}"
