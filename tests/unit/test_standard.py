"""LangChain's standard unit tests for every chat class."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_dbx_serving import ChatDatabricksResponses, ChatDatabricksServing
from langchain_dbx_serving.chat_models._base import DatabricksChatBase

HOST = "https://adb-1234567890.12.azuredatabricks.net"


class _DatabricksStandard(ChatModelUnitTests):
    """The settings both classes share; subclasses name the class and an endpoint."""

    model_class: type[DatabricksChatBase]
    endpoint: str

    @property
    def chat_model_class(self) -> type[DatabricksChatBase]:
        return self.model_class

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": self.endpoint, "host": HOST}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"DATABRICKS_HOST": HOST, "DATABRICKS_TOKEN": "not-a-real-token"},
            {"model": self.endpoint},
            {"host": HOST, "token": "not-a-real-token", "endpoint": self.endpoint},
        )

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True


class TestChatDatabricksServingStandard(_DatabricksStandard):
    model_class = ChatDatabricksServing
    endpoint = "databricks-claude-sonnet-4"


class TestChatDatabricksResponsesStandard(_DatabricksStandard):
    model_class = ChatDatabricksResponses
    endpoint = "my-responses-agent"
