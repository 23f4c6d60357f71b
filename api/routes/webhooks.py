"""Webhooks of the phone providers: each request is handed to its provider, which verifies it (a
signature, or the push URL's token and source) and parses it into Shouwang's own events; nothing here
knows which provider it is.

A signed request can be captured and replayed: an inbound SMS (by its provider id, Twilio's
``MessageSid``) and a keypress (the call's id with the digits) are handled once; a replay is answered
without changing anything. The ids seen are kept in ``webhook_receipts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from alerts.escalation import replies
from alerts.escalation.notifiers import provider_named
from alerts.escalation.notifiers.base import (
    InboundSms,
    Keypress,
    Provider,
    ProviderEvent,
    SignatureError,
    WebhookRequest,
)
from alerts.models import WebhookReceipt
from alerts.refusals import Refusal
from api.auth import real_now
from api.deps import ContextDep

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
KINDS = ("status", "gather", "sms", "sms-status")


def receipt_keys(events: Sequence[ProviderEvent]) -> list[str]:
    """The replay keys of the events that act on an alarm (statuses are idempotent already)."""
    keys = []
    for event in events:
        if isinstance(event, InboundSms) and event.provider_id:
            keys.append(f"sms:{event.provider_id}"[:200])
        elif isinstance(event, Keypress) and event.provider_id:
            keys.append(f"gather:{event.provider_id}:{event.digits[:10]}"[:200])
    return keys


def _first_time(engine: Engine, keys: list[str], context_now: datetime) -> bool:
    """Store the keys; False when any was stored before (a replay)."""
    try:
        with Session(engine) as session, session.begin():
            session.add_all(WebhookReceipt(key=key, received_at=context_now) for key in keys)
    except IntegrityError:
        return False
    return True


def _forget(engine: Engine, keys: list[str]) -> None:
    with Session(engine) as session, session.begin():
        session.execute(delete(WebhookReceipt).where(WebhookReceipt.key.in_(keys)))


@router.post("/{provider}/{kind}", responses={403: {"description": "signature does not verify"}})
async def webhook(provider: str, kind: str, request: Request, context: ContextDep) -> Response:
    """Call status, keypress (gather), inbound SMS and SMS status callbacks. A request whose signature
    does not verify gets 403 and changes nothing; a replayed SMS or keypress changes nothing."""
    target = provider_named(context.provider, provider)
    if target is None or kind not in KINDS:
        raise HTTPException(404, Refusal("no_webhook"))
    form = await request.form()
    params = {key: str(value) for key, value in form.items()}
    base = context.settings.notify.public_base_url
    url = str(request.url) if not base else base.rstrip("/") + request.url.path + (
        f"?{request.url.query}" if request.url.query else "")
    hook = WebhookRequest(kind=kind, url=url, params=params, headers=dict(request.headers))
    return await _handle(context, target, hook)


PUSH_KINDS = {"aliyun": ("sms-report", "sms-up", "voice-report"), "tencent": ("sms-status", "sms-reply")}


@router.post("/{provider}/{token}/{kind}", responses={403: {"description": "wrong token or source"}})
async def push(provider: str, token: str, kind: str, request: Request, context: ContextDep) -> Response:
    """Pushes of the domestic providers (JSON, unsigned): Aliyun's SmsReport, SmsUp and VoiceReport,
    Tencent's SMS status and reply callbacks. The URL's token (notify.webhook_token) and, if set,
    notify.webhook_allow authenticate them; a wrong one gets 403 and changes nothing."""
    target = provider_named(context.provider, provider)
    if target is None or kind not in PUSH_KINDS.get(provider, ()):
        raise HTTPException(404, Refusal("no_webhook"))
    body = await request.body()
    hook = WebhookRequest(kind=kind, url=str(request.url), params={}, headers=dict(request.headers), body=body,
                          token=token, client=request.client.host if request.client else None)
    return await _handle(context, target, hook)


async def _handle(context: ContextDep, target: Provider, hook: WebhookRequest) -> Response:
    """Verify and parse, drop replays, apply the events, answer (an SMS reply may be sent back)."""
    try:
        events = target.parse(hook)
    except SignatureError as exc:
        raise HTTPException(403, str(exc)) from exc
    keys = receipt_keys(events)
    if keys and not await run_in_threadpool(_first_time, context.engine, keys, real_now(context)):
        reply = await run_in_threadpool(target.reply, hook, None)  # already handled: say nothing again
        return Response(reply.body, media_type=reply.media_type)
    now = context.clock.now()
    try:
        message = await run_in_threadpool(replies.handle_events, context.engine, events, now, context.chain)
    except Exception:
        if keys:  # not handled after all: let the provider's retry through
            await run_in_threadpool(_forget, context.engine, keys)
        raise
    reply = await run_in_threadpool(target.reply, hook, message)  # may send an SMS back: off the event loop
    return Response(reply.body, media_type=reply.media_type)
