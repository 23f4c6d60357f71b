"""Phone providers behind one narrow interface (:class:`alerts.escalation.notifiers.base.Provider`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from alerts.escalation.notifiers.base import Provider
from alerts.escalation.notifiers.console import ConsoleProvider, Script
from alerts.escalation.notifiers.twilio import TwilioProvider
from config.settings import NotifySettings


def make_provider(settings: NotifySettings, clock: Callable[[], datetime], script: Script | None = None) -> Provider:
    """Twilio when its credentials are configured, else the console provider."""
    if settings.use_twilio:
        assert settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from
        assert settings.public_base_url
        return TwilioProvider(account_sid=settings.twilio_account_sid, auth_token=settings.twilio_auth_token,
                              from_number=settings.twilio_from, public_base_url=settings.public_base_url,
                              language=settings.language, voice=settings.twilio_voice,
                              api_base=settings.twilio_api_base)
    return ConsoleProvider(clock, settings.language, script)
