"""Settings of the server `bench_hotpaths.py` starts: the project's own, plus one bare view."""

from lanzuan.settings import *  # noqa: F403

ROOT_URLCONF = "bench_urls"
