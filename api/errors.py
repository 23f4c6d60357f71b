"""What a bad request gets: a 4xx with a reason, never a 500, and answers that match the OpenAPI document.

Values are checked where they come in (ids, lengths, ranges in the schemas); these handlers are the net
under that: a value the database refuses (an integer beyond its range, a NUL byte that PostgreSQL
cannot store) is the client's mistake, answered 422, and the request's session rolls back.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

log = logging.getLogger(__name__)

# the largest id a path or query may name: PostgreSQL's integer (the id columns)
MAX_ID = 2**31 - 1

VALIDATION_DETAIL: dict[str, Any] = {
    "title": "Detail",
    "description": "why the request was refused: the list of invalid fields (a request that does not match "
    "this document), or a message (a request that matches it but cannot be carried out), or for the CSV "
    "import an object with `message` and `errors` (each bad line and why)",
    "anyOf": [{"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
              {"type": "string"}, {"type": "object"}],
}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DataError, _refused_value)  # type: ignore[arg-type]
    app.add_exception_handler(OverflowError, _refused_value)  # type: ignore[arg-type]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            declared = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
            if declared is not None:
                declared["properties"]["detail"] = VALIDATION_DETAIL
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _refused_value(_request: Request, exc: Exception) -> JSONResponse:
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
    log.info("request refused: a value the database cannot store", extra={"reason": reason})
    return JSONResponse({"detail": "a value is out of range or cannot be stored (e.g. a NUL character)"},
                        status_code=422)
