"""The bulk look-up: which of a batch of numbers are suppressed at a tenant, in arrays.

For checks of 10,000 numbers and scrub chunks of a million: the numbers are parsed by
`phones.parse_batch`, keyed by `phones` digest version 2 in one AES call per key, and looked
up in the suppression index (`index.py`: sorted, memory-mapped, never stale). Rows of digest
version 1 only (no lookup key) are read from PostgreSQL by their HMAC digest, and only while
the tenant has any. Other databases (make run's SQLite) read every row from the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np

from lanzuan import phones
from unsubscribe.models import Suppression

from . import index
from .selectors import platform_do_not_market_since, relevant_scopes

NEVER = index.NEVER


@dataclass(frozen=True)
class BatchAnswer:
    """Per item of the batch: valid, suppressed (for the asked scope), since (µs, UTC; NEVER
    when not suppressed), the scopes it has (a bit mask over `scope_names`), on the person's
    platform-wide list (`everywhere`)."""

    parsed: phones.ParsedBatch
    suppressed: Any
    since: Any
    scope_mask: Any
    scope_names: list[str]
    everywhere: Any
    tenant_suppressed: Any  # suppressed by the tenant's own rows (not only the platform-wide list)
    also_exists: bool | None = None  # batch_check's `also_exists` query has a row (None: not asked)

    @property
    def raw(self) -> Any:
        return self.parsed.raw

    def scopes_of(self, mask: int) -> tuple[str, ...]:
        return _scopes_of(tuple(self.scope_names), mask)

    @cached_property
    def scope_tuples(self) -> dict[int, tuple[str, ...]]:
        return {int(m): self.scopes_of(int(m)) for m in np.unique(self.scope_mask).tolist()}


_SCOPE_CACHE: dict[tuple[tuple[str, ...], int], tuple[str, ...]] = {}


def _scopes_of(names: tuple[str, ...], mask: int) -> tuple[str, ...]:
    found = _SCOPE_CACHE.get((names, mask))
    if found is None:
        found = tuple(sorted(n for bit, n in enumerate(names) if mask >> bit & 1))
        if len(_SCOPE_CACHE) < 10_000:
            _SCOPE_CACHE[(names, mask)] = found
    return found


MAX_SCOPE_BITS = 64


def _tenant_hits(tenant_id: int, parsed: phones.ParsedBatch, found: tuple[index.Hits, bool]) -> index.Hits:
    hits, v1_only = found
    if not v1_only:
        return hits
    # Rows found by the version-1 digest (rows without a lookup key; every row off PostgreSQL).
    digest_of = phones.tenant_phone_hasher(tenant_id)
    at: dict[str, list[int]] = {}
    for i, e164 in enumerate(parsed.e164()):
        if e164 is not None:
            at.setdefault(digest_of(e164), []).append(i)
    rows = (
        Suppression.objects.for_tenant(tenant_id)
        .filter(phone_hash__in=list(at))
        .values_list("phone_hash", "scope", "created_at")
        if at
        else []
    )
    names = list(hits.scope)
    probes, scope_no, created = [], [], []
    for digest, scope, since in rows:
        if scope not in names:
            names.append(scope)
        for i in at[digest]:
            probes.append(i)
            scope_no.append(names.index(scope))
            created.append(index._us(since))  # noqa: SLF001
    return index.Hits(
        np.concatenate([hits.probe, np.array(probes, dtype=np.int64)]),
        names,
        np.concatenate([hits.scope_no, np.array(scope_no, dtype=np.int64)]),
        np.concatenate([hits.created, np.array(created, dtype=np.int64)]),
    )


def _platform_since(parsed: phones.ParsedBatch, found: tuple[index.Hits, bool]) -> Any:
    """Per item: when the person's platform-wide entry was set (µs), NEVER without one."""
    since = np.full(len(parsed.valid), NEVER, dtype=np.int64)
    hits, v1_only = found
    np.minimum.at(since, hits.probe, hits.created)
    if v1_only:
        e164s = parsed.e164()
        listed = platform_do_not_market_since(e for e in e164s if e)
        for i, e164 in enumerate(e164s):
            if e164 in listed:
                since[i] = min(since[i], index._us(listed[e164]))  # noqa: SLF001
    return since


def batch_check(
    *,
    tenant_id: int,
    parsed: phones.ParsedBatch,
    service_code: str | None = None,
    also_exists: tuple[str, list[Any]] | None = None,
    ahead: index.Ahead | None = None,
) -> BatchAnswer:
    """Which of these parsed numbers are suppressed at the tenant (for `service_code`, or for
    everything), with the same answer as the table's rows give, in arrays. `also_exists` (SQL,
    parameters): whether that query has a row, asked in the look-up's round trip when it has one.
    `ahead`: that round trip, begun by index.lookahead() before the numbers were parsed."""
    count = len(parsed.valid)
    platform_keys = phones.platform_lookup_keys(parsed.blocks)
    tenant_keys = phones.tenant_lookup_keys_from_platform(tenant_id, platform_keys)
    exists = None
    if index.enabled():  # both indexes' changed rows in one round trip
        found, found_platform, exists = index.lookup_with_platform(
            tenant_id, tenant_keys, platform_keys, also_exists=also_exists, ahead=ahead
        )
    else:  # every row from the table, by version-1 digest
        found = found_platform = (index.Hits.empty(), True)
    hits = _tenant_hits(tenant_id, parsed, found)
    keep = parsed.valid[hits.probe] if len(hits.probe) else np.zeros(0, bool)
    probe, scope_no, created = hits.probe[keep], hits.scope_no[keep], hits.created[keep]
    names = hits.scope
    if len(names) > MAX_SCOPE_BITS:  # not one bit each: only the numbers' own scopes count
        used = np.unique(scope_no)
        renumber = np.zeros(len(names), dtype=np.int64)
        renumber[used] = np.arange(len(used))
        names, scope_no = [names[i] for i in used.tolist()], renumber[scope_no]
        if len(names) > MAX_SCOPE_BITS:
            raise ValueError("more than 64 scopes in one batch")
    mask = np.zeros(count, dtype=np.uint64)
    np.bitwise_or.at(mask, probe, np.left_shift(np.uint64(1), scope_no.astype(np.uint64)))
    wanted = relevant_scopes(service_code)
    is_wanted = (
        np.array([n in wanted for n in names] or [False], dtype=bool)[scope_no]
        if len(scope_no)
        else scope_no.astype(bool)
    )
    since = np.full(count, NEVER, dtype=np.int64)
    np.minimum.at(since, probe[is_wanted], created[is_wanted])
    everywhere = _platform_since(parsed, found_platform)
    everywhere[~parsed.valid] = NEVER
    on_list = everywhere != NEVER
    own = since != NEVER
    since = np.minimum(since, everywhere)
    return BatchAnswer(parsed, since != NEVER, since, mask, names, on_list, own, exists)


def since_datetime(us: int) -> datetime:
    return index.since_datetime(us)
