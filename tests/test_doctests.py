"""Every example in the engine's docstrings runs and prints what it shows (numpydoc ``Examples``)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import harness

ROOT = Path(harness.__file__).resolve().parent
MODULES = sorted(
    ".".join(("harness", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
    for path in ROOT.rglob("*.py")
    if "_builtin" not in path.parts and path.name != "__main__.py"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (run `pytest --doctest-modules {name.replace('.', '/')}.py`)"
