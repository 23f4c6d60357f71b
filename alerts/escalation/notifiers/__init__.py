"""Phone providers behind one narrow interface (:class:`alerts.escalation.notifiers.base.Provider`).

A deployment picks one provider per channel (``notify.voice``: twilio | aliyun | console,
``notify.sms``: twilio | aliyun | tencent | console); :func:`make_provider` composes them into one
:class:`ChannelProvider` when they differ.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from alerts.escalation.notifiers.base import Provider, ProviderEvent, WebhookReply, WebhookRequest
from alerts.escalation.notifiers.console import ConsoleProvider, Script
from alerts.escalation.notifiers.mapping import TemplateMappingError
from alerts.escalation.notifiers.twilio import TwilioProvider
from alerts.escalation.templates import Message
from config.settings import NotifySettings

__all__ = ["ChannelProvider", "TemplateMappingError", "make_provider", "provider_named"]


class ChannelProvider:
    """Calls through one provider, SMS through another. Webhooks go to the part they are addressed to
    (:func:`provider_named`); ``name`` says both, e.g. ``aliyun+tencent``."""

    def __init__(self, voice: Provider, sms: Provider) -> None:
        self.voice, self.sms_provider = voice, sms
        self.name = f"{voice.name}+{sms.name}"
        self.parts: dict[str, Provider] = {voice.name: voice, sms.name: sms}

    def call(self, attempt_id: int, to: str, message: Message) -> str:
        return self.voice.call(attempt_id, to, message)

    def sms(self, attempt_id: int, to: str, message: Message) -> str:
        return self.sms_provider.sms(attempt_id, to, message)

    def parse(self, request: WebhookRequest) -> list[ProviderEvent]:
        return self.voice.parse(request)

    def reply(self, request: WebhookRequest, message: Message | None) -> WebhookReply:
        return self.voice.reply(request, message)

    def poll(self, now: datetime) -> list[ProviderEvent]:
        events = self.voice.poll(now)
        if self.sms_provider is not self.voice:
            events += self.sms_provider.poll(now)
        return events


def provider_named(provider: Provider, name: str) -> Provider | None:
    """The provider (or the part of a composed one) called ``name``; None if the deployment has none."""
    parts: dict[str, Provider] = getattr(provider, "parts", {provider.name: provider})
    return parts.get(name)


def make_provider(settings: NotifySettings, clock: Callable[[], datetime], script: Script | None = None) -> Provider:
    """The providers the settings choose per channel; raises :class:`TemplateMappingError` naming a
    template that a chosen domestic provider has no registered code for."""
    built: dict[str, Provider] = {}

    def build(name: str) -> Provider:
        if name in built:
            return built[name]
        provider: Provider
        if name == "twilio":
            assert settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from
            assert settings.public_base_url
            provider = TwilioProvider(account_sid=settings.twilio_account_sid, auth_token=settings.twilio_auth_token,
                                      from_number=settings.twilio_from, public_base_url=settings.public_base_url,
                                      language=settings.language, voice=settings.twilio_voice,
                                      api_base=settings.twilio_api_base)
        elif name == "aliyun":
            from alerts.escalation.notifiers.aliyun import AliyunProvider  # the SDK only where it is used

            assert settings.aliyun is not None and settings.webhook_token
            provider = AliyunProvider(settings.aliyun, voice=settings.voice_provider == "aliyun",
                                      sms=settings.sms_provider == "aliyun", token=settings.webhook_token,
                                      allow=settings.webhook_allow)
        elif name == "tencent":
            from alerts.escalation.notifiers.tencent import TencentSmsProvider

            assert settings.tencent is not None and settings.webhook_token
            provider = TencentSmsProvider(settings.tencent, token=settings.webhook_token, allow=settings.webhook_allow)
        else:
            provider = ConsoleProvider(clock, settings.language, script)
        built[name] = provider
        return provider

    voice, sms = build(settings.voice_provider), build(settings.sms_provider)
    return voice if voice is sms else ChannelProvider(voice, sms)
