"""The local endpoint's HTTP error replies, in every body format real gateways and servers use."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse, Response

from langchain_dbx_serving.testing.local_endpoint.replies import ErrorReply

__all__ = ["common_headers", "error_response"]


def common_headers(request_id: str) -> dict[str, str]:
    return {"x-request-id": request_id}


def error_response(error: ErrorReply, request_id: str, *, detail_style: bool = False) -> Response:
    """An HTTP error in the requested body format, with ``Retry-After`` when set."""
    headers = common_headers(request_id)
    if error.retry_after is not None:
        value = error.retry_after
        headers["retry-after"] = str(int(value)) if float(value).is_integer() else str(value)
    if detail_style:  # MLflow AgentServer (FastAPI HTTPException)
        return JSONResponse({"detail": error.message}, error.status, headers)
    if error.format == "text":
        return Response(f"{error.error_code}: {error.message}", error.status, headers, "text/plain")
    if error.format == "html":
        try:
            phrase = f"{error.status} {HTTPStatus(error.status).phrase}"
        except ValueError:  # a status http.HTTPStatus does not know
            phrase = f"{error.status} Error"
        page = (
            f"<html><head><title>{phrase}</title></head>"
            f"<body><h1>{phrase}</h1><p>{error.message}</p></body></html>"
        )
        return Response(page, error.status, headers, "text/html")
    if error.format == "openai":
        payload = {
            "message": error.message,
            "type": error.error_code.lower(),
            "param": None,
            "code": error.error_code,
        }
        return JSONResponse({"error": payload}, error.status, headers)
    body: dict[str, Any] = {"error_code": error.error_code, "message": error.message}
    if error.details is not None:
        body["details"] = list(error.details)
    return JSONResponse(body, error.status, headers)
