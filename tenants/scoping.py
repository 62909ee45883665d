"""The one place that decides which tenant's rows a caller may see; it fails closed.

Every tenant-owned model inherits `TenantOwnedModel` (a `tenant` foreign key, so
the schema can later be distributed by tenant). Its default manager, `objects`,
builds querysets that refuse to touch the database (fetch, iterate, count,
exists, aggregate, update, delete, get, first, values…, get_or_create,
update_or_create, raw, or serve as an `__in=` subquery) until they say whose rows
they want; otherwise `UnscopedQuery` is raised, naming the model:

- `Model.objects.for_tenant(tenant_or_id)`: one tenant's rows;
- `Model.objects.for_tenants(tenant_ids)`: several tenants' rows;
- `Model.objects.for_user(user)`: an active superuser sees every tenant, active
  staff the tenants they are members of, anyone else nothing;
- `Model.objects.unscoped(reason="...")`: every tenant's rows, for system work
  (sweeps, retention, the cross-tenant hub, platform routing, look-ups by a
  globally unique secret). The reason is required and greppable;
  tests/test_scoping.py lists every call and fails on a new one.

The scope survives chaining (filter, order_by, select_related, values, slicing…).
`a | b`, `a ^ b` and `union` are scoped only if every part is; `a & b`,
`intersection` and `difference` if their narrowing part is. Creating rows
(`create`, `bulk_create`, `save`) needs no scope: the row names its tenant.

Related rows reached from a tenant-owned instance (`request.steps.all()`,
`prefetch_related`) are scoped by that instance: Django builds those querysets
from the default manager and marks them with the `instance` hint. Forward
foreign keys, `refresh_from_db`, `save` and the deletion collector use the plain
base manager (`_base_manager`), as do migrations (`TenantManager` is not
`use_in_migrations`).

Django code that reads `_default_manager` and cannot be handed a scope runs inside
`unscoped_internals(reason=...)`: model unique/constraint validation (here, on
`TenantOwnedModel`), the admin's related-only list filters and simple-history's
historical pages (`tenants.admin`), and `dumpdata` (`tenants` overrides the
command). `Subquery(...)`/`Exists(...)` take the inner query as it is: correlate
them on `OuterRef("tenant_id")` or scope them.

The admin mixin (`tenants.admin.TenantScopedAdmin`) scopes its lists, forms'
choices and inlines with `for_tenants` (superusers: `unscoped`), and the DRF base
view (`tenants.api.TenantScopedAPIView.scoped`) with `for_tenant(key's tenant)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.apps import apps
from django.db import models
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from .models import Membership, Tenant

_M = TypeVar("_M", bound=models.Model)

# Set while Django's own code that reads `_default_manager` runs (see unscoped_internals).
_internals_reason: ContextVar[str | None] = ContextVar("lanzuan_unscoped_internals", default=None)


class UnscopedQuery(RuntimeError):
    """A tenant-owned model was queried without saying whose rows (fails closed)."""

    def __init__(self, model: type[models.Model], operation: str) -> None:
        name = model._meta.label
        super().__init__(
            f"{name}: {operation} on a queryset with no tenant scope. Use "
            f"{model.__name__}.objects.for_tenant(...), .for_user(...), or "
            f'.unscoped(reason="...") for system work.'
        )
        self.model = model
        self.operation = operation


def _require_reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("unscoped() needs a reason saying why every tenant's rows are read")
    return reason.strip()


@contextmanager
def unscoped_internals(*, reason: str) -> Iterator[None]:
    """Lets Django or library code inside the block read every tenant's rows.

    Only for code that reads `_default_manager` itself and cannot be handed a
    scoped queryset (unique validation, list filter choices, dumpdata). Reset in
    `finally`, so it never outlives the block.
    """
    token = _internals_reason.set(_require_reason(reason))
    try:
        yield
    finally:
        _internals_reason.reset(token)


def tenant_ids_for_user(user: Any, roles: Iterable[str] | None = None) -> list[int]:
    """Tenants the user is a member of (with one of `roles`, if given)."""
    if not getattr(user, "is_authenticated", False):
        return []
    memberships = Membership.objects.filter(user_id=user.pk, tenant__is_active=True)
    if roles is not None:
        memberships = memberships.filter(role__in=list(roles))
    return list(memberships.values_list("tenant_id", flat=True))


def request_tenant_ids(request: HttpRequest, roles: frozenset[str] | None = None) -> list[int]:
    """The tenants this request's user may see (or write, with `roles`); read once per request
    (the database scope middleware reads them first, then every admin permission check)."""
    cache: dict[Any, list[int]] = request.__dict__.setdefault("_lanzuan_tenant_ids", {})
    # by user too: logging in or out changes the request's user
    key = (request.user.pk, tuple(sorted(roles)) if roles is not None else None)
    if key not in cache:
        cache[key] = tenant_ids_for_user(request.user, roles)
    return cache[key]


def _tenant_id(tenant: Tenant | int) -> int:
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    if tenant_id is None:
        raise ValueError("for_tenant() needs a saved tenant")
    return int(tenant_id)


class TenantQuerySet(models.QuerySet[_M]):
    """A queryset that must be scoped before it reaches the database."""

    # Why these rows may be read ("tenant 3", "unscoped: <reason>"…); None: not scoped yet.
    _scope: str | None = None
    # Set when combined with an unscoped queryset: a related instance no longer scopes it.
    _widened: bool = False

    # --- saying whose rows ----------------------------------------------------
    def for_tenant(self, tenant: Tenant | int) -> TenantQuerySet[_M]:
        tenant_id = _tenant_id(tenant)
        return self.filter(tenant_id=tenant_id)._scoped(f"tenant {tenant_id}")

    def for_tenants(self, tenants: Iterable[Tenant | int] | models.QuerySet[Tenant]) -> TenantQuerySet[_M]:
        """Several tenants' rows: ids, tenants, or a queryset of tenants (kept as a subquery)."""
        if isinstance(tenants, models.QuerySet):
            return self.filter(tenant__in=tenants)._scoped("tenants of a subquery")
        ids = [_tenant_id(t) for t in tenants]
        return self.filter(tenant_id__in=ids)._scoped(f"tenants {ids}")

    def for_user(self, user: Any) -> TenantQuerySet[_M]:
        """Active superusers see every tenant; active staff their memberships'; anyone else nothing."""
        if not getattr(user, "is_active", False):
            return self.none()
        if getattr(user, "is_superuser", False):
            return self._scoped(f"superuser {user.pk}")
        if not getattr(user, "is_staff", False):
            return self.none()
        return self.for_tenants(tenant_ids_for_user(user))

    def unscoped(self, *, reason: str) -> TenantQuerySet[_M]:
        """Every tenant's rows, for system work; `reason` says why (and is greppable)."""
        return self._scoped(f"unscoped: {_require_reason(reason)}")

    def none(self) -> TenantQuerySet[_M]:
        # An empty queryset reaches no tenant's rows (form fields start from none()).
        return super().none()._scoped("none")

    @property
    def scope(self) -> str | None:
        """Whose rows this queryset reads, or None if it would raise UnscopedQuery."""
        own = self._own_scope()
        if own is not None:
            return own
        reason = _internals_reason.get()
        return f"unscoped internals: {reason}" if reason is not None else None

    def _own_scope(self) -> str | None:
        """The scope the queryset itself carries (not the one a surrounding block lends)."""
        if self._scope is not None:
            return self._scope
        if self._widened:
            return None
        instance = getattr(self, "_hints", {}).get("instance")
        if isinstance(instance, TenantOwnedModel):
            # A related manager's queryset (request.steps, prefetch_related): Django
            # filtered it to rows of this instance, which share its tenant.
            return f"related to {instance._meta.label} {instance.pk}"
        return None

    def _scoped(self, scope: str) -> TenantQuerySet[_M]:
        clone = self.all()
        clone._scope = scope
        return clone

    def _require_scope(self, operation: str) -> None:
        if self.scope is None:
            raise UnscopedQuery(self.model, operation)

    # --- the scope survives cloning and combining ------------------------------
    def _clone(self) -> TenantQuerySet[_M]:
        clone: TenantQuerySet[_M] = super()._clone()  # type: ignore[misc]  # private: not in django-stubs
        clone._scope = self._scope
        clone._widened = self._widened
        return clone

    @staticmethod
    def _scope_of(qs: Any) -> str | None:
        if isinstance(qs, TenantQuerySet):
            return qs._own_scope()
        if issubclass(qs.model, TenantOwnedModel):
            return None  # a plain (base manager) queryset of a tenant-owned model
        return "not tenant-owned"  # no tenant to leak

    def _combined(self, result: Any, parts: Iterable[Any], *, every: bool) -> Any:
        """`result` is scoped if every part is (`every`), else if any part is."""
        scopes = [self._scope_of(part) for part in parts]
        ok = all(s is not None for s in scopes) if every else any(s is not None for s in scopes)
        if not isinstance(result, TenantQuerySet):
            # Django rebuilt a sliced side on the plain base manager: no later check would run.
            if not ok:
                raise UnscopedQuery(self.model, "combining with an unscoped queryset")
            return result
        result = result.all()
        result._scope = " & ".join(str(s) for s in scopes) if ok else None
        result._widened = not ok
        return result

    def __or__(self, other: Any) -> Any:
        return self._combined(super().__or__(other), [self, other], every=True)

    def __xor__(self, other: Any) -> Any:
        combined = super().__xor__(other)  # type: ignore[misc]  # django-stubs lacks QuerySet.__xor__
        return self._combined(combined, [self, other], every=True)

    def __and__(self, other: Any) -> Any:
        return self._combined(super().__and__(other), [self, other], every=False)

    def union(self, *other_qs: Any, all: bool = False) -> Any:  # noqa: A002 (Django's name)
        return self._combined(super().union(*other_qs, all=all), [self, *other_qs], every=True)

    def intersection(self, *other_qs: Any) -> Any:
        return self._combined(super().intersection(*other_qs), [self, *other_qs], every=False)

    def difference(self, *other_qs: Any) -> Any:
        return self._combined(super().difference(*other_qs), [self], every=True)

    # --- every way to reach the database checks the scope ----------------------
    def _fetch_all(self) -> None:
        if self._result_cache is None:
            self._require_scope("fetching rows")
        super()._fetch_all()

    def iterator(self, chunk_size: int | None = None) -> Iterator[_M]:
        self._require_scope("iterator()")
        return super().iterator(chunk_size)

    def count(self) -> int:
        if self._result_cache is None:
            self._require_scope("count()")
        return super().count()

    def exists(self) -> bool:
        if self._result_cache is None:
            self._require_scope("exists()")
        return super().exists()

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._require_scope("aggregate()")
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs: Any) -> int:
        self._require_scope("update()")
        return super().update(**kwargs)

    def _update(self, values: Any) -> Any:
        self._require_scope("update()")
        return super()._update(values)  # type: ignore[misc]  # private: not in django-stubs

    def delete(self) -> tuple[int, dict[str, int]]:
        self._require_scope("delete()")
        return super().delete()

    def _raw_delete(self, using: Any) -> int:
        self._require_scope("delete()")
        return super()._raw_delete(using)

    def explain(self, *, format: Any = None, **options: Any) -> str:  # noqa: A002 (Django's name)
        self._require_scope("explain()")
        return super().explain(format=format, **options)

    def raw(self, raw_query: Any, params: Any = (), translations: Any = None, using: Any = None) -> Any:
        self._require_scope("raw()")
        return super().raw(raw_query, params, translations, using)

    def resolve_expression(self, *args: Any, **kwargs: Any) -> Any:
        # Used as a subquery (`pk__in=queryset`): its rows decide the outer query's.
        self._require_scope("a subquery")
        return super().resolve_expression(*args, **kwargs)

    resolve_expression.queryset_only = True  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        # repr() would fetch rows; debug pages and logs must not raise for an unscoped queryset.
        if self._result_cache is None and self.scope is None:
            return f"<{type(self).__name__} of {self.model._meta.label}, not scoped>"
        return super().__repr__()


# An assignment, so that django-stubs can type the manager's methods from the queryset's.
_TenantManagerBase = models.Manager.from_queryset(TenantQuerySet)


class TenantManager(_TenantManagerBase[_M]):
    """The default manager of every tenant-owned model: its querysets start unscoped."""


class TenantOwnedModel(models.Model):
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="+", db_index=True, verbose_name=_("tenant")
    )

    objects = TenantManager()

    class Meta:
        abstract = True

    # Uniqueness holds across the whole table, as the database enforces it; Django's
    # checks query `_default_manager`, so they run with every tenant's rows in view.
    def validate_unique(self, exclude: Any = None) -> None:
        with unscoped_internals(reason="unique checks span the whole table"):
            super().validate_unique(exclude)

    def validate_constraints(self, exclude: Any = None) -> None:
        with unscoped_internals(reason="constraint checks span the whole table"):
            super().validate_constraints(exclude)


def tenant_owned_models() -> list[type[models.Model]]:
    """Every concrete model that carries a tenant (for isolation tests and audits)."""
    return [
        model
        for model in apps.get_models()
        if issubclass(model, TenantOwnedModel) and not model._meta.abstract
    ]
