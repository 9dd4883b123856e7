"""RAG: embeddings endpoint -> in-memory vector store -> retriever -> prompt -> chat model.

Offline by default: a local serving endpoint on 127.0.0.1 serves deterministic hashed
bag-of-words embeddings (``HashEmbeddingBackend``) and a small "model" that answers from the
retrieved context it is given, citing its source.
Live: set DATABRICKS_HOST and DATABRICKS_TOKEN (and optionally DBX_EMBEDDINGS_ENDPOINT,
DBX_CHAT_ENDPOINT).

    python cookbook/03_rag.py
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableParallel, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_dbx_serving import ChatDatabricksServing, DatabricksServingEmbeddings
from langchain_dbx_serving.testing import BackendRequest, HashEmbeddingBackend, LocalEndpoint

DOCS = [
    ("delta.md", "Delta Lake adds ACID transactions and time travel to Parquet tables."),
    ("unity.md", "Unity Catalog governs tables, models and volumes with one permission model."),
    ("serving.md", "Model Serving exposes models and agents as REST endpoints that autoscale."),
    ("vector.md", "Vector Search indexes embeddings of Delta tables for similarity queries."),
    ("jobs.md", "Lakeflow Jobs schedule notebooks and pipelines with retries and alerts."),
]
QUESTIONS = [
    "Which feature adds time travel to tables?",
    "How are models exposed as REST endpoints?",
]

PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "Answer in one sentence using only the context below, and cite the source in "
            "brackets.\n\nContext:\n{context}",
        ),
        ("human", "{question}"),
    ]
)


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def context_model(request: BackendRequest) -> str:
    """A deterministic stand-in for a served chat model: answers with the context line that
    shares the most words with the question, citing its source."""
    system, question = request.messages[0].text, request.messages[-1].text
    lines = re.findall(r"^\[(.+?)\] (.+)$", system, flags=re.MULTILINE)
    if not lines:
        return "I don't know: the context is empty."
    source, text = max(lines, key=lambda line: len(words(line[1]) & words(question)))
    return f"{text} [{source}]"


@contextlib.contextmanager
def models() -> Iterator[tuple[DatabricksServingEmbeddings, ChatDatabricksServing]]:
    if os.environ.get("DATABRICKS_HOST") and os.environ.get("DATABRICKS_TOKEN"):
        embed = os.environ.get("DBX_EMBEDDINGS_ENDPOINT", "databricks-gte-large-en")
        chat = os.environ.get("DBX_CHAT_ENDPOINT", "databricks-claude-sonnet-4")
        yield (
            DatabricksServingEmbeddings(endpoint=embed),
            ChatDatabricksServing(endpoint=chat, max_tokens=200, temperature=0),
        )
        return
    backends = {"embeddings": HashEmbeddingBackend(dimensions=256), "rag-chat": context_model}
    with LocalEndpoint(backends) as local:
        print(f"(offline: local serving endpoint at {local.base_url})\n")
        yield (
            DatabricksServingEmbeddings(endpoint="embeddings", host=local.host, token=local.token),
            ChatDatabricksServing(endpoint="rag-chat", host=local.host, token=local.token),
        )


def format_docs(docs: list[Document]) -> str:
    return "\n".join(f"[{doc.metadata['source']}] {doc.page_content}" for doc in docs)


def main() -> None:
    with models() as (embeddings, llm):
        store = InMemoryVectorStore(embeddings)
        ids = store.add_texts(
            [text for _, text in DOCS], metadatas=[{"source": s} for s, _ in DOCS]
        )
        print(f"indexed {len(ids)} documents")
        retriever = store.as_retriever(search_kwargs={"k": 2})

        # {"docs", "question"} -> + "answer": the prompt sees the retrieved docs as context.
        answer = (
            RunnablePassthrough.assign(context=lambda x: format_docs(x["docs"]))
            | PROMPT
            | llm
            | StrOutputParser()
        )
        chain = RunnableParallel(docs=retriever, question=RunnablePassthrough()).assign(
            answer=answer
        )
        for question in QUESTIONS:
            result = chain.invoke(question)
            print(f"\nQ: {question}")
            print(f"A: {result['answer']}")
            print("sources:", [doc.metadata["source"] for doc in result["docs"]])


if __name__ == "__main__":
    main()
