"""One Redis client per URL per process, for everything that talks to Redis directly:
waiting requests, worker readiness, metrics and the broker check (kombu keeps its own
connections for messages). redis-py's pools reconnect by themselves after a fork."""

import functools

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


@functools.cache
def redis_client(url):
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


@functools.cache
def quick_redis_client(url):
    """For work that has a slower way round when Redis is unwell (the status cache): a
    quarter second per attempt and no retries, where redis-py would retry three times."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=0.25, socket_timeout=0.25, retry=Retry(NoBackoff(), 0)
    )
