"""Time limits, leases and the longest broker countdown, derived from settings. Pure."""

from __future__ import annotations


def hard_limit(timeout: float) -> float:
    """A step's soft limit raises inside it; the hard limit, a little later, kills it."""
    return timeout + min(5.0, max(1.0, timeout * 0.25))


def lease_seconds(timeout: float) -> float:
    """A lease outlives the hard limit, so a live step never looks abandoned."""
    return hard_limit(timeout) + min(5.0, max(1.0, timeout * 0.25))


def max_countdown(visibility_timeout: float) -> float:
    """Longest delay sent as a broker countdown; longer ones wait in Postgres.

    A countdown message is held unacked by a worker until it is due; past the
    Redis visibility timeout it would be delivered twice (celery#2599), and
    RabbitMQ closes channels holding a message unacked past 30 minutes.
    """
    return min(visibility_timeout / 2, 900.0)
