"""What a process remembers of rows that hot paths read on every call and that change rarely
(API keys, a tenant's webhook credential, channel settings, reply routes).

One rule for all of them: an entry is trusted for `seconds`, then read again; a change saved
in this process forgets the whole memo at once (post_save / post_delete of the models it was
told about, and again when that transaction commits, so a reader that filled it in between
does not keep the old row); a change made by another process is seen within `seconds`.
`QuerySet.update()` sends no signal: such a change is seen within `seconds` too.

Loaders that raise are not remembered (an unknown API key is asked about every time).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

V = TypeVar("V")

_all: weakref.WeakSet[ProcessMemo[Any]] = weakref.WeakSet()
_clock = time.monotonic  # a module attribute: tests move it on


class ProcessMemo(Generic[V]):
    """A process-local map key → value with a time to live, forgotten when its models change."""

    def __init__(self, name: str, *, seconds: float, max_entries: int = 10_000) -> None:
        self.name = name
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()
        _all.add(self)

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        """The remembered value of `key`, or `load()`'s (remembered unless it raises)."""
        now = _clock()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.seconds:
            return hit[1]
        value = load()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (now, value)
        return value

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()

    def forget_on_change(self, *watched: type[models.Model]) -> None:
        """Forget everything when a row of one of these models is saved or deleted here."""
        for model in watched:
            for signal, what in ((post_save, "save"), (post_delete, "delete")):
                signal.connect(
                    self._changed,
                    sender=model,
                    weak=False,
                    dispatch_uid=f"lanzuan_memo_{self.name}_{model._meta.label_lower}_{what}",
                )

    def _changed(self, sender: Any, **kwargs: Any) -> None:
        self.forget()
        # A reader may fill the memo with the old row before this transaction commits.
        transaction.on_commit(self.forget, using=kwargs.get("using"))


def forget_all() -> None:
    """Every memo of this process starts empty (tests: as in a new process)."""
    for memo in list(_all):
        memo.forget()
