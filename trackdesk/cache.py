"""Django's Redis cache, with one client object per connection pool instead of one per call.

Django's RedisCacheClient.get_client() builds a new redis.Redis around the pool for every cache
operation, and building one fills a table of about 170 response callbacks: two of them per API
call (the throttle reads and writes its window), a twentieth of the web worker's CPU per
conversion. A client only wraps the pool, so one per pool serves every call, thread and forked
process alike (redis-py's pool opens new connections in a child process).
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class ReusingClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingClient
