"""A few seconds' memory, per process, of the configuration the busiest requests read.

Every click looks up its offer and affiliate, and every conversion its type, its payout rule
and its click's offer and affiliate:
rows that change a few times a day, read hundreds of times a second. A `Memo` keeps what such a
look-up found (also "nothing") for HOT_CONFIG_CACHE_SECONDS (default 5; 0 turns it off):

- a save or delete of one of its models through the ORM forgets everything it holds in this
  process at once (the admin, the API and the shell all save that way);
- another process (the other gunicorn workers, another node) sees the change when its entry
  expires, within those seconds. So deactivating an offer stops its tracking link, and a new
  payout rule applies to new conversions, at most that long after the save
  (`QuerySet.update()`, which sends no signal, is seen the same way).

The memory is per process and bounded (`maxsize` entries, least recently used dropped first).
"""

import threading

from cachetools import TTLCache
from django.conf import settings
from django.db.models.signals import post_delete, post_save

_MISSING = object()
_all: list["Memo"] = []


class Memo:
    def __init__(self, name: str, *, models, maxsize: int = 10_000):
        self.name, self.maxsize = name, maxsize
        self._lock = threading.Lock()
        self._cache: TTLCache | None = None
        for model in models:
            post_save.connect(self._forget, sender=model, weak=False)
            post_delete.connect(self._forget, sender=model, weak=False)
        _all.append(self)

    def get(self, key, load):
        """What `load()` returns for `key`, from memory while that is fresh."""
        cache = self._current()
        if cache is None:
            return load()
        with self._lock:
            value = cache.get(key, _MISSING)
        if value is _MISSING:
            value = load()
            with self._lock:
                cache[key] = value
        return value

    def get_many(self, keys, load_many) -> dict:
        """{key: value} for `keys`; `load_many(missing keys)` returns {key: value} for those
        it found, and the others are remembered as None."""
        cache = self._current()
        if cache is None:
            found = load_many(set(keys))
            return {key: found.get(key) for key in keys}
        with self._lock:
            known = {key: cache.get(key, _MISSING) for key in keys}
        missing = {key for key, value in known.items() if value is _MISSING}
        if missing:
            found = load_many(missing)
            with self._lock:
                for key in missing:
                    known[key] = cache[key] = found.get(key)
        return known

    def forget(self) -> None:
        with self._lock:
            if self._cache is not None:
                self._cache.clear()

    def _forget(self, **kwargs) -> None:
        self.forget()

    def _current(self) -> TTLCache | None:
        seconds = settings.HOT_CONFIG_CACHE_SECONDS
        if seconds <= 0:
            return None
        cache = self._cache
        if cache is None or cache.ttl != seconds:  # first use, or the setting changed (tests)
            with self._lock:
                cache = self._cache = TTLCache(self.maxsize, seconds)
        return cache


def forget_all() -> None:
    """Empty every memo of this process (tests do between cases)."""
    for memo in _all:
        memo.forget()
