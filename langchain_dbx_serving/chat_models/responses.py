"""``ChatDatabricksResponses``: responses-style agent endpoints (ResponsesAgent, agent Apps)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar, Literal

from langchain_core.tools import BaseTool

from langchain_dbx_serving._paths import endpoint_segment
from langchain_dbx_serving.chat_models._base import DatabricksChatBase
from langchain_dbx_serving.protocols import responses

# MLflow's AgentServer returns the trace id only when asked with this header.
_TRACE_ID_HEADER = {"x-mlflow-return-trace-id": "true"}


class ChatDatabricksResponses(DatabricksChatBase):
    """Chat model for agent endpoints that speak the responses protocol.

    Targets MLflow ``ResponsesAgent`` endpoints on Model Serving (through the OpenAI-compatible
    ``/serving-endpoints/responses`` route, or ``/{endpoint}/invocations`` with
    ``route="invocations"``) and agents served by MLflow's ``AgentServer`` as Apps (pass the
    app's URL as ``base_url``). ``custom_outputs``, ``trace_id`` and the returned ``trace`` land
    in ``response_metadata`` (and in ``on_llm_end``, the ``databricks_trace`` custom event and
    the caller's MLflow trace: see ``langchain_dbx_serving.tracing``); every output item is
    kept under ``response_metadata["output"]``.

    Example:
        .. code-block:: python

            from langchain_dbx_serving import ChatDatabricksResponses

            agent = ChatDatabricksResponses(endpoint="my-agent", return_trace=True)
            reply = agent.invoke("Summarise ticket 42", custom_inputs={"team": "support"})
            reply.text, reply.response_metadata["trace_id"]
            print(get_trace(reply).tree())  # from langchain_dbx_serving import get_trace

            app = ChatDatabricksResponses(endpoint="my-agent", base_url="https://my-app.databricksapps.com")
            for chunk in app.stream("hi"):
                print(chunk.text, end="")
    """

    route: Literal["responses", "invocations"] = "responses"
    """``responses`` POSTs ``{base_url}/responses`` with ``"model": endpoint``; ``invocations``
    POSTs ``{base_url}/{endpoint}/invocations``."""

    _protocol: ClassVar[ModuleType] = responses

    @property
    def _llm_type(self) -> str:
        return "databricks-serving-responses"

    def _url(self, endpoint: str) -> str:
        if self.route == "invocations":
            return f"{self._root_url()}/{endpoint_segment(endpoint)}/invocations"
        return f"{self._root_url()}/responses"

    def _route_params(self, endpoint: str) -> dict[str, Any]:
        return {"model": endpoint} if self.route == "responses" else {}

    def _decode_options(self, params: Mapping[str, Any]) -> dict[str, Any]:
        # Only calls of tools the caller bound are tool_calls; the agent's own are server blocks.
        return {"client_tools": responses.tool_names(params)}

    def _headers(self, params: Mapping[str, Any]) -> dict[str, str] | None:
        options = params.get("databricks_options")
        if isinstance(options, Mapping) and options.get("return_trace"):
            return _TRACE_ID_HEADER
        return None

    def as_tool(  # type: ignore[override]
        self,
        args_schema: Any = None,
        *,
        name: str | None = None,
        description: str | None = None,
        arg_types: dict[str, type] | None = None,
        custom_inputs: Mapping[str, Any] | None = None,
        forward_custom_inputs: Sequence[str] = (),
    ) -> BaseTool:
        """This agent as a sub-agent tool: ``AgentEndpoint(chat=self).as_tool(...)``.

        Content is the answer text, ``ToolMessage.artifact`` the whole ``AgentResponse`` (see
        ``langchain_dbx_serving.agent_tool``). With ``args_schema`` or ``arg_types`` this is
        LangChain's generic ``Runnable.as_tool``.

        Example:
            .. code-block:: python

                research = ChatDatabricksResponses(endpoint="research-agent").as_tool(
                    name="research", description="Finds facts about a topic."
                )
        """
        if args_schema is not None or arg_types is not None:
            return super().as_tool(
                args_schema, name=name, description=description, arg_types=arg_types
            )
        from langchain_dbx_serving.agents import AgentEndpoint

        return AgentEndpoint(chat=self).as_tool(
            name=name,
            description=description,
            custom_inputs=custom_inputs,
            forward_custom_inputs=forward_custom_inputs,
        )
