"""The same chain over a Spark DataFrame: ``mapInPandas``, one unpickled chain per partition.

When a dataset outgrows one machine, Spark spreads its partitions over executors. The chain
(``prompt | ChatDatabricksServing | parser``) is pickled once on the driver; each partition
unpickles it once, then sends its rows with ``chain.batch(..., max_concurrency=...)``. The
pickle carries the settings and an explicit ``token=`` (executors need it; one read from the
environment or a profile is not pickled, but read again on the executor) and no HTTP client:
each executor process opens its own connection pool on its first request. Rows that fail
after the transport's retries come back as ``error: ...`` labels instead of failing the Spark
task.

Offline by default: Spark runs in local mode (``local[2]``, bound to 127.0.0.1, no UI) and the
driver starts a local serving endpoint on 127.0.0.1 that classifies reviews by keywords and
answers one request in ten with ``429`` and ``Retry-After: 0`` (absorbed by the executors'
retries). Live: set DATABRICKS_HOST and DATABRICKS_TOKEN (and optionally DBX_CHAT_ENDPOINT);
on a Databricks cluster, use the cluster's ``spark`` session instead of ``local_spark()``.
Needs ``pip install "pyspark[sql]"`` (and Java 17+).

    python cookbook/09_spark_mapinpandas.py
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from langchain_dbx_serving import ChatDatabricksServing
from langchain_dbx_serving.testing import BackendRequest, FaultPlan, LocalEndpoint, Reply

PARTITIONS = 4
LABELS = ("positive", "negative", "neutral")
OPINIONS = {
    "positive": "I love this {p}, it works great.",
    "negative": "The {p} arrived broken.",
    "neutral": "The {p} is as described.",
}
PRODUCTS = ("kettle", "headphones", "desk lamp", "backpack", "blender")
KEYWORDS = {"positive": ("love", "great"), "negative": ("broken", "terrible")}


def reviews() -> list[tuple[str, str]]:
    """The dataset: 300 ``(id, review)`` rows, 100 of each sentiment."""
    return [
        (f"r{i:03d}", OPINIONS[LABELS[i % 3]].format(p=PRODUCTS[(i // 3) % len(PRODUCTS)]))
        for i in range(300)
    ]


def sentiment_model(request: BackendRequest) -> Reply:
    """A stand-in for a served model: one-word sentiment by keywords."""
    review = request.messages[-1].text.lower()
    label = next((k for k, words in KEYWORDS.items() if any(w in review for w in words)), None)
    return Reply.text(label or "neutral", usage=(len(review.split()) + 30, 1))


@contextlib.contextmanager
def chat_model() -> Iterator[tuple[ChatDatabricksServing, LocalEndpoint | None]]:
    if os.environ.get("DATABRICKS_HOST") and os.environ.get("DATABRICKS_TOKEN"):
        endpoint = os.environ.get("DBX_CHAT_ENDPOINT", "databricks-claude-sonnet-4")
        # Passed explicitly so that it travels to executors that lack DATABRICKS_TOKEN.
        token = os.environ["DATABRICKS_TOKEN"]
        yield (
            ChatDatabricksServing(endpoint=endpoint, token=token, max_tokens=5, temperature=0),
            None,
        )
        return
    busy = Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "too many requests", retry_after=0)
    faults = FaultPlan([None] * 9 + [busy], repeat=True)
    # Executors in local mode are processes on this machine: they reach 127.0.0.1.
    with LocalEndpoint(sentiment_model, faults=faults) as local:
        print(f"(offline: local serving endpoint at {local.base_url})\n")
        yield ChatDatabricksServing(endpoint="sentiment", host=local.host, token=local.token), local


def build_chain(llm: ChatDatabricksServing) -> Runnable:
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Classify the review's sentiment: positive, negative or neutral. One word."),
            ("human", "{review}"),
        ]
    )
    return prompt | llm | StrOutputParser()


def labeler(chain_bytes: bytes, max_concurrency: int = 8) -> Any:
    """The ``mapInPandas`` function: unpickles the chain once per partition, batches its rows."""

    def label_partition(batches: Iterator[Any]) -> Iterator[Any]:
        chain = pickle.loads(chain_bytes)  # once per partition
        config = {"max_concurrency": max_concurrency}
        for frame in batches:
            inputs = [{"review": review} for review in frame["review"]]
            outputs = chain.batch(inputs, config=config, return_exceptions=True)
            frame = frame[["id"]].copy()
            frame["label"] = [
                f"error: {type(out).__name__}" if isinstance(out, Exception) else out.strip(" .")
                for out in outputs
            ]
            yield frame

    return label_partition


def local_spark() -> Any:
    """A local-mode session that stays on loopback: no UI, nothing downloaded."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers: this interpreter
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    # pyspark warns about pandas 3 on import of its pandas helpers; mapInPandas works with it.
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas")

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("langchain-dbx-serving-cookbook")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", str(PARTITIONS))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def main() -> None:
    spark = local_spark()
    try:
        rows = spark.sparkContext.parallelize(reviews(), PARTITIONS)
        df = spark.createDataFrame(rows, "id string, review string")
        print(f"dataset: {df.count()} reviews in {df.rdd.getNumPartitions()} partitions")
        with chat_model() as (llm, local):
            chain_bytes = pickle.dumps(build_chain(llm))
            print(f"chain pickled once on the driver: {len(chain_bytes):,} bytes")
            labeled = df.mapInPandas(labeler(chain_bytes), "id string, label string")
            # One action, so each row is sent once (a real job would rather write a table:
            # labeled.write.saveAsTable(...)). Each further action would call the model again.
            result = sorted((r["id"], r["label"]) for r in labeled.collect())
            if local is not None:
                print(f"the endpoint served {len(local.requests)} requests, ", end="")
                print(f"{local.faults.applied} of them 429 (retried by the executors)")
        print(f"labels: {dict(sorted(Counter(label for _, label in result).items()))}")
        print("first rows:", result[:3])
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
