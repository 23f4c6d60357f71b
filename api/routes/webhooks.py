"""Webhooks of the phone provider: each request is handed to the provider, which verifies its
signature and parses it into Shouwang's own events; nothing here knows which provider it is."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from alerts.escalation import replies
from alerts.escalation.notifiers.base import SignatureError, WebhookRequest
from api.deps import ContextDep

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
KINDS = ("status", "gather", "sms", "sms-status")


@router.post("/{provider}/{kind}", responses={403: {"description": "signature does not verify"}})
async def webhook(provider: str, kind: str, request: Request, context: ContextDep) -> Response:
    """Call status, keypress (gather), inbound SMS and SMS status callbacks. A request whose signature
    does not verify gets 403 and changes nothing."""
    if provider != context.provider.name or kind not in KINDS:
        raise HTTPException(404, "no such webhook")
    form = await request.form()
    params = {key: str(value) for key, value in form.items()}
    base = context.settings.notify.public_base_url
    url = str(request.url) if not base else base.rstrip("/") + request.url.path + (
        f"?{request.url.query}" if request.url.query else "")
    hook = WebhookRequest(kind=kind, url=url, params=params, headers=dict(request.headers))
    try:
        events = context.provider.parse(hook)
    except SignatureError as exc:
        raise HTTPException(403, str(exc)) from exc
    now = context.clock.now()
    message = await run_in_threadpool(replies.handle_events, context.engine, events, now, context.chain)
    reply = context.provider.reply(hook, message)
    return Response(reply.body, media_type=reply.media_type)
