"""Django's Redis cache, for a Redis database shared under key prefixes (LANZUAN_REDIS_KEY_PREFIX)."""

from __future__ import annotations

import re

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


class PrefixedRedisCache(RedisCache):
    """clear() removes only the keys under this cache's KEY_PREFIX. Django's flushes the
    whole Redis database, and with it the keys of whoever shares it: another site, or
    another worker of a parallel test run (whose rate-limit counters and codes vanish
    mid-test)."""

    _cache: RedisCacheClient  # Django's client, a cached property the type stubs leave out

    def clear(self) -> None:
        if not self.key_prefix:
            super().clear()
            return
        client = self._cache.get_client(write=True)
        pattern = _GLOB_SPECIAL.sub(r"\\\1", self.key_prefix) + ":*"
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 1000:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
