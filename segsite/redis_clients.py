"""One Redis client per URL per process, for everything that talks to Redis directly:
waiting requests, worker readiness, metrics and the broker check (kombu keeps its own
connections for messages). redis-py's pools reconnect by themselves after a fork."""

import functools

import redis


@functools.cache
def redis_client(url):
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
