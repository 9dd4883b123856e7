"""Root of the suite. Fixtures live with the tests that use them: the local serving endpoint
(``serving``, ``make_chat``) in ``tests/support/serving.py``, loaded by the loopback folders'
conftests (integration, reliability, compat); this file imports no server, so unit tests run
without starlette and uvicorn.

The AgentServer plugin is registered here because pytest takes ``pytest_plugins`` only from the
root conftest; it imports httpx and pytest, and starts its server only when a test asks for it.
"""

pytest_plugins = ["tests.support.agentserver"]
