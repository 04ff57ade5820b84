"""The Redis cache (trackdesk/cache.py) keeps one client per connection pool and behaves as
Django's own: the API throttles and the memo's neighbours rely on it."""

import os
import uuid

import pytest
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

from trackdesk.cache import RedisCache

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")


def cache_at(url: str, backend=RedisCache):
    return backend(url, {"KEY_PREFIX": f"test-cache-{uuid.uuid4().hex}"})


def test_every_operation_goes_through_one_client_object():
    cache = cache_at(REDIS_URL)
    first = cache._cache.get_client()
    cache.set("window", [1, 2], 30)
    assert cache.get("window") == [1, 2]
    assert cache.add("window", "other", 30) is False
    cache.set("n", 1, 30)
    assert cache.incr("n") == 2
    cache.delete_many(["window", "n"])
    assert cache.get_many(["window", "n"]) == {}
    assert cache._cache.get_client(write=True) is first
    # Django's own builds one per call: the difference this module is for.
    django = cache_at(REDIS_URL, DjangoRedisCache)
    assert django._cache.get_client() is not django._cache.get_client()


def test_a_forked_child_gets_its_own_connection_through_the_same_client():
    cache = cache_at(REDIS_URL)
    cache.set("before-fork", "parent", 30)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the inherited client must open a connection of its own
        try:
            ok = cache.get("before-fork") == "parent" and cache.set("child", "yes", 30) is None
        except Exception:
            ok = False
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert cache.get("child") == "yes" and cache.get("before-fork") == "parent"
    cache.delete_many(["before-fork", "child"])
