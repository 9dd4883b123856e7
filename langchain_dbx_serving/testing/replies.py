"""The documented door to the local endpoint's neutral replies (``Reply``, ``Fault``, ...).

Defined in :mod:`langchain_dbx_serving.testing.local_endpoint.replies`; see its docstring.
"""

from __future__ import annotations

from langchain_dbx_serving.testing.local_endpoint.replies import (
    Delta,
    ErrorReply,
    Fault,
    FaultPlan,
    Quirks,
    RawReply,
    Reply,
    ToolCall,
    ToolCallDelta,
    ToolStep,
    Usage,
    reply_from_dict,
)

__all__ = [
    "Delta",
    "ErrorReply",
    "Fault",
    "FaultPlan",
    "Quirks",
    "RawReply",
    "Reply",
    "ToolCall",
    "ToolCallDelta",
    "ToolStep",
    "Usage",
    "reply_from_dict",
]
