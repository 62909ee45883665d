"""Where a raw number may be left after a fault: the database (every table), files under
LANZUAN_VAR_DIR, and this session's keys in Redis (the broker's queues and the cache).

The file gateway's outbox is left out: it is the person's phone, numbers and all (README,
"The file gateway"). A session's earlier tests may have left files and keys of their own
(a real worker's outbox, a queued task): a test takes a `baseline()` first and checks only
what appeared since."""

from __future__ import annotations

from pathlib import Path

import redis
from django.conf import settings

from ..pipeline_helpers import E164, NUMBER
from ..test_trust_faults import tables_holding

# Every form a number was seen stored in (issue 19, item 1).
FORMS = (E164, NUMBER, "138-0013-8000", "138 0013 8000")


def files_holding(*forms: str, root: Path | None = None) -> list[str]:
    """Files under `root` (LANZUAN_VAR_DIR) holding one of `forms`, outboxes aside."""
    base = Path(root or settings.VAR_DIR)
    found = []
    for path in sorted(base.rglob("*")):
        if not path.is_file() or path.name.startswith("outbox"):
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found += [f"{path} ({form})" for form in forms if form.encode() in data]
    return found


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def redis_holding(*forms: str) -> list[str]:
    """This session's Redis keys (broker and cache) whose values hold one of `forms`."""
    found: list[str] = []
    urls = {settings.CELERY_BROKER_URL, str(settings.CACHES["default"].get("LOCATION", ""))}
    prefix = settings.REDIS_KEY_PREFIX
    for url in sorted(u for u in urls if u.startswith(("redis://", "rediss://"))):
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=f"{prefix}:*" if prefix else "*", count=500):
            kind = _bytes(client.type(key)).decode()
            values: list[object] = []
            if kind == "string":
                values = [client.get(key)]
            elif kind == "list":
                values = list(client.lrange(key, 0, -1))
            elif kind == "hash":
                values = [item for pair in client.hgetall(key).items() for item in pair]
            elif kind == "set":
                values = list(client.smembers(key))
            elif kind == "zset":
                values = list(client.zrange(key, 0, -1))
            blob = b" ".join(_bytes(value) for value in [key, *values] if value is not None)
            name = _bytes(key).decode(errors="replace")
            found += [f"{name} ({form})" for form in forms if form.encode() in blob]
    return found


def baseline() -> set[str]:
    """What holds a number before the test starts (another test's files and keys)."""
    return set(files_holding(*FORMS)) | set(redis_holding(*FORMS))


def raw_numbers_left(since: set[str] | None = None) -> list[str]:
    """Every place a raw number is still stored: tables, files, Redis (apart from `since`)."""
    found = [*tables_holding(*FORMS), *files_holding(*FORMS), *redis_holding(*FORMS)]
    return [place for place in found if place not in (since or set())]
