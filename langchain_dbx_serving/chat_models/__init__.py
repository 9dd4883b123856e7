"""LangChain chat models, one small class per wire protocol over a shared base."""

from langchain_dbx_serving.chat_models.chat_completions import ChatDatabricksServing
from langchain_dbx_serving.chat_models.responses import ChatDatabricksResponses

__all__ = ["ChatDatabricksResponses", "ChatDatabricksServing"]
