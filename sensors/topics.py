"""MQTT topic filters and the routing of a topic to its format. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from config.settings import FormatRoute


@lru_cache(maxsize=256)
def _filter(topic_filter: str) -> tuple[str | None, tuple[str, ...]]:
    """A filter's levels; and, for a filter ``<fixed levels>/#``, its fixed prefix with the slash."""
    parts = topic_filter.split("/")
    plain = len(parts) > 1 and parts[-1] == "#" and "+" not in parts and "#" not in parts[:-1]
    return (topic_filter[:-1] if plain else None), tuple(parts)


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching with ``+`` (one level) and ``#`` (the rest, including none)."""
    prefix, f_parts = _filter(topic_filter)
    if prefix is not None and topic.startswith(prefix):  # ingest's common case: ``base/#``, a topic below it
        return True
    t_parts = topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return i < len(t_parts) or i == len(t_parts)
        if i >= len(t_parts):
            return False
        if part != "+" and part != t_parts[i]:
            return False
    return len(f_parts) == len(t_parts)


def route_for(topic: str, routes: Sequence[FormatRoute]) -> FormatRoute | None:
    """The first configured route whose filter matches the topic."""
    for route in routes:
        if matches(route.topic, topic):
            return route
    return None


@lru_cache(maxsize=256)
def base_of(topic_filter: str) -> str:
    """The fixed prefix of a filter: ``zigbee2mqtt/#`` -> ``zigbee2mqtt``."""
    parts = []
    for part in topic_filter.split("/"):
        if part in ("+", "#"):
            break
        parts.append(part)
    return "/".join(parts)


def subscription(topic_filter: str, share_group: str) -> str:
    """``$share/<group>/<filter>`` so several consumers split the stream; plain without a group."""
    return f"$share/{share_group}/{topic_filter}" if share_group else topic_filter
