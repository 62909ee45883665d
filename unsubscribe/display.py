"""Stored codes as staff read them: a language code by its name in the reader's language."""

from __future__ import annotations

from django.conf import settings


def language_display(code: str) -> str:
    # settings.LANGUAGES holds lazy names: str() reads them in the active language.
    names = {c.lower(): str(name) for c, name in settings.LANGUAGES}
    return names.get((code or "").lower(), code)
