"""``EndpointRouter``: send each input to one of several named runnables, with fallbacks.

The route is chosen by a classifier chat model (structured output over the route names and
descriptions) or by a plain function. When the chosen route fails with a rate limit or an
unavailable endpoint before producing anything, the router tries the route's configured
alternatives in order. The chosen route is in the output (:class:`RouteResult`), in the run's
name and tags for callbacks, and in a ``databricks_route`` custom event for ``astream_events``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import patch_config
from pydantic import BaseModel, ConfigDict, Field, create_model

from langchain_dbx_serving._lifecycle import Closeable
from langchain_dbx_serving.errors import (
    RateLimitError,
    ServiceUnavailableError,
    ServingConnectionError,
)

__all__ = ["EndpointRouter", "Route", "RouteResult"]

# Failures that say "this endpoint cannot take the request now", not "the request is wrong".
FALLBACK_ERRORS: tuple[type[Exception], ...] = (
    RateLimitError,
    ServiceUnavailableError,
    ServingConnectionError,
)

# The custom event (``astream_events``) that names the route about to be called.
ROUTE_EVENT = "databricks_route"


class Route(BaseModel):
    """A named destination: any runnable (chat model, ``AgentEndpoint``, whole chain)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    description: str = ""
    runnable: Runnable
    fallbacks: list[str] = Field(default_factory=list)
    """Names of routes to try, in order, when this one is rate-limited or unavailable."""


class RouteResult(BaseModel):
    """The routed output: which route answered, what it returned, what was tried first."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    route: str
    output: Any = None
    fell_back_from: list[str] = Field(default_factory=list)

    def __add__(self, other: RouteResult) -> RouteResult:
        # Stream chunks of one route add up like the route's own chunks do.
        return RouteResult(
            route=other.route,
            output=self.output + other.output,
            fell_back_from=other.fell_back_from,
        )


class EndpointRouter(Closeable, RunnableSerializable[Any, RouteResult]):
    """Routes an input to one of several named runnables.

    Example:
        .. code-block:: python

            router = EndpointRouter(
                routes=[
                    Route(name="billing", description="invoices, refunds",
                          runnable=AgentEndpoint("billing-agent"), fallbacks=["general"]),
                    Route(name="general", description="anything else",
                          runnable=ChatDatabricksServing(endpoint="databricks-claude-sonnet-4")),
                ],
                classifier=ChatDatabricksServing(endpoint="databricks-claude-haiku-4"),
            )
            result = router.invoke("Why was I charged twice?")
            result.route, result.output
    """

    routes: list[Route]
    classifier: BaseChatModel | None = None
    """A chat model asked (with structured output) to pick a route name."""
    select: Callable[[Any], str] | None = None
    """A function from the input to a route name; used instead of a classifier."""
    instructions: str = "Choose the route that should handle the user's request. Routes:\n{routes}"

    def model_post_init(self, context: Any) -> None:
        names = [route.name for route in self.routes]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"EndpointRouter needs routes with distinct names, got {names}")
        if (self.classifier is None) == (self.select is None):
            raise ValueError("pass exactly one of classifier= or select=")
        for route in self.routes:
            unknown = [name for name in route.fallbacks if name not in names]
            if unknown:
                raise ValueError(f"route {route.name!r} falls back to unknown routes {unknown}")

    def _owned(self) -> list[Any]:
        return [self.classifier, *(route.runnable for route in self.routes)]

    # -- choosing ---------------------------------------------------------------------------------
    def _by_name(self) -> dict[str, Route]:
        return {route.name: route for route in self.routes}

    def _classifier_chain(self) -> Runnable:
        names = tuple(route.name for route in self.routes)
        choice = create_model(
            "RouteChoice",
            route=(Literal[names], Field(description="the name of the chosen route")),  # type: ignore[valid-type]
        )
        assert self.classifier is not None
        return self.classifier.with_structured_output(choice)

    def _classifier_messages(self, value: Any) -> list[BaseMessage]:
        listing = "\n".join(f"- {r.name}: {r.description}" for r in self.routes)
        return [
            SystemMessage(self.instructions.format(routes=listing)),
            HumanMessage(_text_of(value)),
        ]

    def _checked(self, name: Any) -> str:
        if name not in self._by_name():
            raise ValueError(f"the router chose {name!r}, which is not one of its routes")
        return name

    def _choose(self, value: Any, config: RunnableConfig) -> str:
        if self.select is not None:
            return self._checked(self.select(value))
        child = patch_config(config, run_name="route_classifier")
        choice = self._classifier_chain().invoke(self._classifier_messages(value), child)
        return self._checked(choice.route)

    async def _achoose(self, value: Any, config: RunnableConfig) -> str:
        if self.select is not None:
            return self._checked(self.select(value))
        child = patch_config(config, run_name="route_classifier")
        choice = await self._classifier_chain().ainvoke(self._classifier_messages(value), child)
        return self._checked(choice.route)

    def _attempts(self, chosen: str) -> _Attempts:
        routes = self._by_name()
        return _Attempts([routes[chosen], *(routes[name] for name in routes[chosen].fallbacks)])

    @staticmethod
    def _route_config(config: RunnableConfig, route: Route) -> RunnableConfig:
        return patch_config(config, run_name=f"route:{route.name}")

    # The four loops below share the fallback policy (``_Attempts``); each differs only in how
    # it dispatches the route event and calls the route (invoke/ainvoke/stream/astream).

    # -- invoke -----------------------------------------------------------------------------------
    def invoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> RouteResult:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> RouteResult:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    def _invoke(self, value: Any, config: RunnableConfig) -> RouteResult:
        attempts = self._attempts(self._choose(value, config))
        for route in attempts:
            dispatch_custom_event(ROUTE_EVENT, attempts.event(route), config=config)
            try:
                output = route.runnable.invoke(value, self._route_config(config, route))
            except FALLBACK_ERRORS:
                if attempts.fall_back(route, started=False):
                    continue
                raise
            return attempts.result(route, output)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ainvoke(self, value: Any, config: RunnableConfig) -> RouteResult:
        attempts = self._attempts(await self._achoose(value, config))
        for route in attempts:
            await adispatch_custom_event(ROUTE_EVENT, attempts.event(route), config=config)
            try:
                output = await route.runnable.ainvoke(value, self._route_config(config, route))
            except FALLBACK_ERRORS:
                if attempts.fall_back(route, started=False):
                    continue
                raise
            return attempts.result(route, output)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- stream -----------------------------------------------------------------------------------
    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[RouteResult]:
        yield from self._transform_stream_with_config(iter([input]), self._stream, config, **kwargs)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[RouteResult]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async for chunk in self._atransform_stream_with_config(
            one(), self._astream, config, **kwargs
        ):
            yield chunk

    def _stream(self, inputs: Iterator[Any], config: RunnableConfig) -> Iterator[RouteResult]:
        for value in inputs:
            attempts = self._attempts(self._choose(value, config))
            for route in attempts:
                dispatch_custom_event(ROUTE_EVENT, attempts.event(route), config=config)
                started = False
                try:
                    for chunk in route.runnable.stream(value, self._route_config(config, route)):
                        started = True
                        yield attempts.result(route, chunk)
                except FALLBACK_ERRORS:
                    if attempts.fall_back(route, started=started):
                        continue
                    raise
                break

    async def _astream(
        self, inputs: AsyncIterator[Any], config: RunnableConfig
    ) -> AsyncIterator[RouteResult]:
        async for value in inputs:
            attempts = self._attempts(await self._achoose(value, config))
            for route in attempts:
                await adispatch_custom_event(ROUTE_EVENT, attempts.event(route), config=config)
                started = False
                try:
                    async for chunk in route.runnable.astream(
                        value, self._route_config(config, route)
                    ):
                        started = True
                        yield attempts.result(route, chunk)
                except FALLBACK_ERRORS:
                    if attempts.fall_back(route, started=started):
                        continue
                    raise
                break


class _Attempts:
    """The fallback policy for one input, written once for invoke/ainvoke/stream/astream.

    Iterating gives the chosen route, then its fallbacks in order. After a route raised one of
    ``FALLBACK_ERRORS``, :meth:`fall_back` says whether to try the next one: not when the route
    was the last candidate, and not once a chunk reached the caller (switching routes then would
    splice two answers).
    """

    def __init__(self, candidates: list[Route]) -> None:
        self.candidates = candidates
        self.tried: list[str] = []

    def __iter__(self) -> Iterator[Route]:
        return iter(self.candidates)

    def event(self, route: Route) -> dict[str, Any]:
        """The payload of the ``databricks_route`` custom event sent before calling ``route``."""
        return {"route": route.name, "tried": list(self.tried)}

    def result(self, route: Route, output: Any) -> RouteResult:
        return RouteResult(route=route.name, output=output, fell_back_from=list(self.tried))

    def fall_back(self, route: Route, *, started: bool) -> bool:
        """Record that ``route`` failed; True to try the next route, False to re-raise."""
        if started or route is self.candidates[-1]:
            return False
        self.tried.append(route.name)
        return True


def _text_of(value: Any) -> str:
    """The text a classifier should read: the string, or the last message of a conversation."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in ("messages", "input", "question", "query"):
            if key in value:
                return _text_of(value[key])
        return str(dict(value))
    if isinstance(value, BaseMessage):
        return value.text
    if isinstance(value, Sequence) and value:
        last = value[-1]
        if isinstance(last, BaseMessage):
            return last.text
        if isinstance(last, tuple) and len(last) == 2:
            return str(last[1])
        if isinstance(last, Mapping):
            return str(last.get("content", last))
        return str(last)
    return str(value)
