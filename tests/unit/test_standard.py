"""LangChain's standard unit tests for every chat class."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_dbx_serving import ChatDatabricksResponses, ChatDatabricksServing

HOST = "https://adb-1234567890.12.azuredatabricks.net"


class TestChatDatabricksServingStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatDatabricksServing]:
        return ChatDatabricksServing

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "databricks-claude-sonnet-4", "host": HOST}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"DATABRICKS_HOST": HOST, "DATABRICKS_TOKEN": "not-a-real-token"},
            {"model": "databricks-claude-sonnet-4"},
            {"host": HOST, "token": "not-a-real-token", "endpoint": "databricks-claude-sonnet-4"},
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


class TestChatDatabricksResponsesStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatDatabricksResponses]:
        return ChatDatabricksResponses

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "my-responses-agent", "host": HOST}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"DATABRICKS_HOST": HOST, "DATABRICKS_TOKEN": "not-a-real-token"},
            {"model": "my-responses-agent"},
            {"host": HOST, "token": "not-a-real-token", "endpoint": "my-responses-agent"},
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
