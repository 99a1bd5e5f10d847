"""kombu's Redis transport, publishing through one client object per channel.

kombu builds a new ``redis.Redis`` object for every message it publishes
(``Channel.conn_or_acquire``); redis-py's constructor copies its table of ~200
response callbacks each time. A worker publishes four messages per step (the
next step and three task events), and the profile put that constructor at ~9 %
of the worker's CPU. The client object holds no per-call state — connections
come from the channel's pool, as before — so one per channel does the same
work. Used for ``redis://`` brokers (``app.messaging.celery_config``).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the consumer's BRPOP client: kombu keeps that one itself
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel
