"""The docstring examples (``>>>``) of every module of the package run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import langchain_dbx_serving

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(langchain_dbx_serving.__path__, "langchain_dbx_serving.")
    if not info.name.endswith("__main__")
)


def test_the_package_has_docstring_examples() -> None:
    examples = 0
    for name in MODULES:
        module = importlib.import_module(name)
        examples += sum(len(t.examples) for t in doctest.DocTestFinder().find(module))
    assert examples >= 10


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (see above)"
