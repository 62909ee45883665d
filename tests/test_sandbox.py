"""Tests never touch a `var/` they did not make (issue 11, item 9): `make test` next to a
running `make run` once lost the demo's queued codes to the tests' worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from lanzuan.cache import PrefixedRedisCache

from .workers import ROOT, worker_env

SHARED_VAR = (ROOT / "var").resolve()


def _inside(path: object, folder: Path) -> bool:
    return Path(str(path)).resolve().is_relative_to(folder)


def test_the_session_has_its_own_var_dir_outside_the_repo_var() -> None:
    var_dir = Path(settings.VAR_DIR)
    assert not _inside(var_dir, SHARED_VAR)
    assert not _inside(var_dir, ROOT)  # not even var/ci, which a demo may share
    assert Path(os.environ["LANZUAN_VAR_DIR"]).resolve() == var_dir
    derived: list[Path | str] = [settings.OUTBOX_PATH, settings.MEDIA_ROOT, settings.STATIC_ROOT]
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    derived += [
        options[key] for key in ("data_folder_in", "processed_folder", "control_folder") if key in options
    ]
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        derived.append(settings.DATABASES["default"]["TEST"]["NAME"])
    if "filebased" in settings.CACHES["default"]["BACKEND"]:
        derived.append(settings.CACHES["default"]["LOCATION"])
    for path in derived:
        assert _inside(path, var_dir), path
    cache.set("sandbox-probe", 1)  # the cache answers from this session's own store


def test_the_real_worker_gets_the_same_throwaway_dir() -> None:
    env = worker_env()
    assert Path(env["LANZUAN_VAR_DIR"]).resolve() == Path(settings.VAR_DIR)
    assert "LANZUAN_OUTBOX_PATH" not in env or _inside(env["LANZUAN_OUTBOX_PATH"], Path(settings.VAR_DIR))
    assert env["CELERY_BROKER_URL"] == settings.CELERY_BROKER_URL


def test_the_session_keeps_its_redis_keys_under_a_prefix_of_its_own() -> None:
    """Parallel workers share CI's Redis databases: each keeps its queues and cache keys apart."""
    prefix = settings.REDIS_KEY_PREFIX
    assert prefix == Path(settings.VAR_DIR).name  # one per process, like the var dir
    assert worker_env()["LANZUAN_REDIS_KEY_PREFIX"] == prefix
    if settings.CELERY_BROKER_URL.startswith("redis"):
        assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] == f"{prefix}:"
    if settings.CACHE_URL.startswith("redis"):
        assert settings.CACHES["default"]["KEY_PREFIX"] == prefix


def test_clearing_the_cache_spares_the_keys_of_another_prefix() -> None:
    if not settings.CACHE_URL.startswith("redis"):
        pytest.skip("the cache is this session's own folder here; CI runs this on Redis")
    neighbour = PrefixedRedisCache(
        settings.CACHE_URL, {"KEY_PREFIX": f"{settings.REDIS_KEY_PREFIX}-neighbour"}
    )
    neighbour.set("counter", 7)
    cache.set("counter", 1)
    try:
        cache.clear()
        assert cache.get("counter") is None
        assert neighbour.get("counter") == 7
    finally:
        neighbour.clear()
    assert neighbour.get("counter") is None
