"""Webhooks of the phone provider: each request is handed to the provider, which verifies its
signature and parses it into Shouwang's own events; nothing here knows which provider it is."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from alerts.escalation import replies
from alerts.escalation.notifiers import provider_named
from alerts.escalation.notifiers.base import SignatureError, WebhookRequest
from api.deps import ContextDep

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
KINDS = ("status", "gather", "sms", "sms-status")


@router.post("/{provider}/{kind}", responses={403: {"description": "signature does not verify"}})
async def webhook(provider: str, kind: str, request: Request, context: ContextDep) -> Response:
    """Call status, keypress (gather), inbound SMS and SMS status callbacks. A request whose signature
    does not verify gets 403 and changes nothing."""
    target = provider_named(context.provider, provider)
    if target is None or kind not in KINDS:
        raise HTTPException(404, "no such webhook")
    form = await request.form()
    params = {key: str(value) for key, value in form.items()}
    base = context.settings.notify.public_base_url
    url = str(request.url) if not base else base.rstrip("/") + request.url.path + (
        f"?{request.url.query}" if request.url.query else "")
    hook = WebhookRequest(kind=kind, url=url, params=params, headers=dict(request.headers))
    try:
        events = target.parse(hook)
    except SignatureError as exc:
        raise HTTPException(403, str(exc)) from exc
    now = context.clock.now()
    message = await run_in_threadpool(replies.handle_events, context.engine, events, now, context.chain)
    reply = target.reply(hook, message)
    return Response(reply.body, media_type=reply.media_type)


PUSH_KINDS = {"aliyun": ("sms-report", "sms-up", "voice-report"), "tencent": ("sms-status", "sms-reply")}


@router.post("/{provider}/{token}/{kind}", responses={403: {"description": "wrong token or source"}})
async def push(provider: str, token: str, kind: str, request: Request, context: ContextDep) -> Response:
    """Pushes of the domestic providers (JSON, unsigned): Aliyun's SmsReport, SmsUp and VoiceReport,
    Tencent's SMS status and reply callbacks. The URL's token (notify.webhook_token) and, if set,
    notify.webhook_allow authenticate them; a wrong one gets 403 and changes nothing."""
    target = provider_named(context.provider, provider)
    if target is None or kind not in PUSH_KINDS.get(provider, ()):
        raise HTTPException(404, "no such webhook")
    body = await request.body()
    hook = WebhookRequest(kind=kind, url=str(request.url), params={}, headers=dict(request.headers), body=body,
                          token=token, client=request.client.host if request.client else None)
    try:
        events = target.parse(hook)
    except SignatureError as exc:
        raise HTTPException(403, str(exc)) from exc
    now = context.clock.now()
    message = await run_in_threadpool(replies.handle_events, context.engine, events, now, context.chain)
    reply = await run_in_threadpool(target.reply, hook, message)  # may send an SMS back: off the event loop
    return Response(reply.body, media_type=reply.media_type)
