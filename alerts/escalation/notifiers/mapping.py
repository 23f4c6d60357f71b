"""Our templates as registered at a domestic provider, and the edge rules of those providers.

Aliyun and Tencent send only pre-registered templates: each of our template ids
(:data:`alerts.escalation.templates.TEMPLATES`) maps, per provider, to the code it was registered under
and the ordered names of our parameters that the registered template takes. The mapping is
configuration (``[notify.aliyun.templates.<id>]`` / ``[notify.tencent.templates.<id>]``); a missing one
stops the start with a message naming it (:class:`TemplateMappingError`).

Parameters are fitted to the provider's variable rules before sending (no line breaks, no 【】 which
only the signature may use, at most ``max_length`` characters): an over-long name is shortened, never
refused at the provider. Phone numbers are E.164 inside Shouwang; :func:`aliyun_number` and
:func:`tencent_number` give the form each provider expects, :func:`from_national` turns what they
push back into E.164.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from alerts.escalation.templates import TEMPLATES, Message
from config.settings import ProviderTemplate

# what each channel of a provider may be asked to send (targets.template_for, transitions, replies)
VOICE_TEMPLATES = ("check_call", "alarm_call", "system_call", "call_thanks")
SMS_TEMPLATES = ("alarm_sms", "maintenance_sms", "system_sms", "outcome_sms")
REPLY_TEMPLATES = ("reply_ack", "reply_family", "reply_list", "reply_none", "reply_help")
ELLIPSIS = "…"


class TemplateMappingError(ValueError):
    """A template the deployment needs has no registered code (or names parameters it does not have)."""


@dataclass(frozen=True)
class Registered:
    code: str
    params: tuple[str, ...]


def placeholders(template: str) -> set[str]:
    """The parameter names our template ``template`` uses (in either language)."""
    names: set[str] = set()
    for text in TEMPLATES[template].values():
        names.update(field for _, field, _, _ in string.Formatter().parse(text) if field)
    return names


class TemplateMap:
    """One provider's registered templates for one channel, checked when the provider is built."""

    def __init__(self, provider: str, templates: Mapping[str, ProviderTemplate], required: Iterable[str],
                 max_length: int) -> None:
        self.provider = provider
        self.max_length = max_length
        self._by_id: dict[str, Registered] = {}
        for template_id, registered in templates.items():
            if template_id not in TEMPLATES:
                raise TemplateMappingError(
                    f"notify.{provider}.templates.{template_id}: Shouwang has no template {template_id!r} "
                    f"(known: {', '.join(sorted(TEMPLATES))})")
            unknown = [p for p in registered.params if p not in placeholders(template_id)]
            if unknown:
                raise TemplateMappingError(
                    f"notify.{provider}.templates.{template_id}.params names {', '.join(unknown)}, which "
                    f"{template_id} does not have (it has {', '.join(sorted(placeholders(template_id))) or 'none'})")
            self._by_id[template_id] = Registered(registered.code, tuple(registered.params))
        missing = [t for t in required if t not in self._by_id]
        if missing:
            raise TemplateMappingError(
                f"no registered {provider} template for {', '.join(missing)}: add "
                + "; ".join(f"[notify.{provider}.templates.{t}] code = \"...\", params = [...]" for t in missing)
                + " (docs/escalation.md lists the parameters of each template)")

    def __contains__(self, template_id: str) -> bool:
        return template_id in self._by_id

    def code(self, template_id: str) -> str:
        return self._by_id[template_id].code

    def params(self, message: Message) -> list[tuple[str, str]]:
        """The registered template's parameters, in order, each fitted to the provider's limits."""
        registered = self._by_id[message.template]
        return [(name, fit(message.params.get(name, ""), self.max_length)) for name in registered.params]


_SPACES = re.compile(r"\s+")


def fit(value: object, max_length: int) -> str:
    """A template variable the provider accepts: one line, no 【】, at most ``max_length`` characters
    (shortened with an ellipsis, never refused)."""
    text = _SPACES.sub(" ", str(value)).strip().replace("【", "[").replace("】", "]")
    if len(text) > max_length:
        text = text[: max(max_length - 1, 0)].rstrip() + ELLIPSIS if max_length > 1 else text[:max_length]
    return text or "-"  # both providers refuse an empty variable


# -- phone numbers at the edge ------------------------------------------------------------------------------
def _digits(e164: str) -> str:
    return re.sub(r"[^\d]", "", e164)


def aliyun_number(e164: str) -> str:
    """Aliyun wants mainland numbers without +86 (mobiles as 11 digits, landlines with their 0 trunk
    prefix: 0717...) and others as country code + number without the plus."""
    digits = _digits(e164)
    if not e164.startswith("+"):
        return digits
    if digits.startswith("86"):
        national = digits[2:]
        return national if re.fullmatch(r"1\d{10}", national) else "0" + national
    return digits


def tencent_number(e164: str) -> str:
    """Tencent wants E.164 with the plus: +8613800000000."""
    return "+" + _digits(e164)


def from_national(number: str, nation: str = "86") -> str:
    """A number as a provider pushes it back (13800000001, 07178000001, +8613800000001, with a nation
    code apart or not) in Shouwang's E.164 form."""
    number = number.strip()
    if number.startswith("+"):
        return "+" + _digits(number)
    digits = _digits(number)
    if digits.startswith("00"):
        return "+" + digits[2:]
    if nation == "86" and digits.startswith("86") and len(digits) > 11:
        return "+" + digits
    if nation == "86" and digits.startswith("0"):
        digits = digits[1:]
    return f"+{nation}{digits}"
