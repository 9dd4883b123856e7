"""Testing your own chain on recorded traffic, with the package's pytest plugin.

Installing langchain-dbx-serving registers the plugin. A test that asks for ``dbx_chat`` (or
``dbx_serving``, for any endpoint or agent) gets its own cassette: it replays offline by default
(CI needs no workspace and no network), and records live when ``DATABRICKS_HOST`` and
``DATABRICKS_TOKEN`` are set and pytest runs with ``--record-mode=once`` (or ``rewrite``);
tokens and the workspace host never reach the cassette. The cassettes of this file are in
``cassettes/cookbook/``, recorded against a local endpoint (see ``cassettes/README.md``).

    python cookbook/07_testing_with_cassettes.py            # = pytest on this file: replays
    pytest cookbook/07_testing_with_cassettes.py --record-mode=rewrite   # re-record live
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate


def build_chain(llm):  # your chain, as your application builds it
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{question}")])
    return prompt | llm | StrOutputParser()


def test_chain_answers(dbx_chat):  # dbx_chat: ChatDatabricksServing, live or replayed
    assert "Paris" in build_chain(dbx_chat).invoke({"question": "What is the capital of France?"})


def test_chain_streams(dbx_chat):
    pieces = list(build_chain(dbx_chat).stream({"question": "What is the largest planet?"}))
    assert len(pieces) > 1 and "Jupiter" in "".join(pieces)


@pytest.fixture(scope="module")
def vcr_cassette_dir():  # optional: the default is cassettes/<module> next to the test file
    return str(Path(__file__).resolve().parents[1] / "cassettes" / "cookbook")


if __name__ == "__main__":  # run this file's tests with pytest
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", __file__, "-v", *sys.argv[1:]]))
