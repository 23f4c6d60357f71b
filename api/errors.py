"""What a bad request gets: a 4xx with a reason, never a 500, and answers that match the OpenAPI document.

Values are checked where they come in (ids, lengths, ranges in the schemas); these handlers are the net
under that: a value the database refuses (an integer beyond its range, a NUL byte that PostgreSQL
cannot store) is the client's mistake, answered 422, and the request's session rolls back.

The reason is worded in ``notify.language`` (zh by default) through :mod:`alerts.refusals`: a route
raises ``HTTPException(status, Refusal(code, **params))`` (or passes on a domain error, which is a
:class:`~alerts.refusals.Refusal`), and the handler here turns it into ``{"detail": "..."}`` in the
reader's language, with the code in the ``X-Error-Code`` header. A structured detail (the CSV import's
``{"message", "errors": [{"line", "reason"}]}``) is worded item by item. FastAPI's 422 for a request that
does not match the schemas keeps its list of errors (``loc``, ``type``, ``msg``, ...); ``msg`` is worded
for the common pydantic error types and stays pydantic's English otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.utils import is_body_allowed_for_status_code
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from alerts import wording
from alerts.escalation.templates import Language
from alerts.refusals import REFUSALS, Refusal, word

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


ERROR_CODE_HEADER = "X-Error-Code"
# what FastAPI and Starlette raise themselves, in English
_THEIR_WORDS = {"Not Found": "not_found", "Method Not Allowed": "method_not_allowed",
                "There was an error parsing the body": "body_unreadable"}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
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


def language_of(request: Request) -> Language:
    """The reader's language: the app's ``notify.language`` (the process's wording without a context)."""
    context = getattr(request.app.state, "context", None)
    settings = getattr(context, "settings", None)
    return settings.notify.language if settings is not None else wording.configured().language


def _worded(value: Any, language: Language) -> Any:
    if isinstance(value, Refusal):
        return value.worded(language)
    if isinstance(value, dict):
        return {k: _worded(v, language) for k, v in value.items()}
    if isinstance(value, list):
        return [_worded(v, language) for v in value]
    return value


def _code_of(detail: Any) -> str | None:
    if isinstance(detail, Refusal):
        return detail.code
    if isinstance(detail, dict):
        return _code_of(detail.get("message"))
    return None


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    detail: Any = exc.detail
    if isinstance(detail, str) and detail in _THEIR_WORDS:
        detail = Refusal(_THEIR_WORDS[detail])
    code = _code_of(detail)
    headers = dict(exc.headers or {})
    if code is not None and code != "text":
        headers[ERROR_CODE_HEADER] = code
    if not is_body_allowed_for_status_code(exc.status_code):
        return Response(status_code=exc.status_code, headers=headers)
    return JSONResponse({"detail": _worded(detail, language_of(request))}, status_code=exc.status_code,
                        headers=headers)


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's answer (the list of errors), each ``msg`` in the reader's language where it is known."""
    language = language_of(request)
    errors = []
    for error in exc.errors():
        error = dict(error)
        if language != "en":
            error["msg"] = validation_msg(error, language)
        if isinstance(error.get("ctx"), dict) and isinstance(error["ctx"].get("error"), BaseException):
            error["ctx"] = {**error["ctx"], "error": error["msg"] if language != "en" else str(error["ctx"]["error"])}
        errors.append(error)
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422,
                        headers={ERROR_CODE_HEADER: "invalid_request"})


def validation_msg(error: dict[str, Any], language: Language) -> str:
    kind, ctx = str(error.get("type", "")), dict(error.get("ctx") or {})
    if kind == "value_error":
        cause = ctx.get("error")
        if isinstance(cause, Refusal):
            return cause.worded(language)
        ctx = {"why": str(cause) if cause is not None else str(error.get("msg", ""))}
    if f"invalid.{kind}" not in REFUSALS:
        return str(error.get("msg", ""))
    return word(f"invalid.{kind}", language, ctx)


async def _refused_value(request: Request, exc: Exception) -> JSONResponse:
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
    log.info("request refused: a value the database cannot store", extra={"reason": reason})
    return JSONResponse({"detail": word("stored_value", language_of(request))}, status_code=422,
                        headers={ERROR_CODE_HEADER: "stored_value"})
