"""Tenant scoping fails closed (tenants/scoping.py).

A tenant-owned model's default manager refuses to reach the database until the query
says whose rows it wants; related managers, forms, the admin and dumpdata keep working;
and every deliberate escape hatch in the app is listed below, so a new one fails here.
"""

from __future__ import annotations

import ast
import io
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import models
from django.urls import reverse
from model_bakery import baker

from tenants.models import Membership, Role, Tenant
from tenants.scoping import (
    TenantManager,
    TenantOwnedModel,
    TenantQuerySet,
    UnscopedQuery,
    tenant_owned_models,
    unscoped_internals,
)
from unsubscribe.inbound.models import ReplyRoute
from unsubscribe.models import Service, Step, Suppression, Target, UnsubscribeRequest

from .conftest import PASSWORD

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.contrib.auth.models import AnonymousUser, User
    from django.test import Client
    from pytest_django import DjangoAssertNumQueries

pytestmark = pytest.mark.django_db

MODELS = sorted(tenant_owned_models(), key=lambda m: m._meta.label)

# Every way a queryset reaches the database; each must refuse an unscoped one.
OPERATIONS: dict[str, Callable[[TenantQuerySet[Any]], object]] = {
    "list": list,
    "iterate": lambda qs: next(iter(qs), None),
    "len": len,
    "bool": bool,
    "index": lambda qs: qs[0],
    "count": lambda qs: qs.count(),
    "exists": lambda qs: qs.exists(),
    "first": lambda qs: qs.first(),
    "last": lambda qs: qs.order_by("pk").last(),
    "get": lambda qs: qs.get(pk=1),
    "latest": lambda qs: qs.latest("pk"),
    "in_bulk": lambda qs: qs.in_bulk([1]),
    "iterator": lambda qs: list(qs.iterator()),
    "values": lambda qs: list(qs.values("pk")),
    "values_list": lambda qs: list(qs.values_list("pk", flat=True)),
    "aggregate": lambda qs: qs.aggregate(n=models.Count("pk")),
    "update": lambda qs: qs.update(tenant_id=1),
    "delete": lambda qs: qs.delete(),
    "explain": lambda qs: qs.explain(),
    "get_or_create": lambda qs: qs.get_or_create(pk=1),
    "update_or_create": lambda qs: qs.update_or_create(pk=1),
    "subquery": lambda qs: list(Tenant.objects.filter(pk__in=qs.values("tenant_id"))),
    "raw": lambda qs: list(qs.raw(f"SELECT * FROM {qs.model._meta.db_table}")),  # noqa: S608
}


def outsider() -> User:
    return get_user_model().objects.create_user(username="olga", password=PASSWORD)


def two_services(tenant_a: Tenant, tenant_b: Tenant) -> tuple[Service, Service]:
    return (
        baker.make(Service, tenant=tenant_a, code="news", name="News A"),
        baker.make(Service, tenant=tenant_b, code="news", name="News B"),
    )


# --- unscoped queries raise --------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_an_unscoped_query_raises_for_every_tenant_owned_model(
    model: type[TenantOwnedModel], django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    for operation, run in OPERATIONS.items():
        with pytest.raises(UnscopedQuery) as raised, django_assert_num_queries(0):
            run(model.objects.filter(pk__gte=0))
        assert model._meta.label in str(raised.value), operation
        assert "for_tenant" in str(raised.value), operation


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_every_tenant_owned_model_has_the_failing_manager_and_a_plain_base_manager(
    model: type[TenantOwnedModel],
) -> None:
    assert isinstance(model._default_manager, TenantManager)
    assert isinstance(model.objects.all(), TenantQuerySet)
    # Related look-ups, save, refresh_from_db and the deletion collector use this one.
    assert type(model._base_manager) is models.Manager
    # Migrations' historical models get a plain manager.
    assert not model._default_manager.use_in_migrations


def test_the_escape_hatch_needs_a_reason() -> None:
    with pytest.raises(TypeError):
        Service.objects.unscoped()  # type: ignore[call-arg]  # deliberately without the reason it requires
    for reason in ("", "   "):
        with pytest.raises(ValueError, match="reason"):
            Service.objects.unscoped(reason=reason)
        with pytest.raises(ValueError, match="reason"), unscoped_internals(reason=reason):
            pass


def test_an_unscoped_queryset_prints_without_querying(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    with django_assert_num_queries(0):
        text = repr(Service.objects.filter(code="x"))
    assert "not scoped" in text


# --- scoped queries work, and their scope survives chaining -------------------------------


def test_for_tenant_reads_one_tenant_and_survives_chaining(tenant_a: Tenant, tenant_b: Tenant) -> None:
    mine, theirs = two_services(tenant_a, tenant_b)
    for scoped in (Service.objects.for_tenant(tenant_a), Service.objects.for_tenant(tenant_a.pk)):
        chained = (
            scoped.filter(code="news")
            .exclude(pk=0)
            .order_by("name")
            .select_related("tenant")
            .distinct()
            .all()
        )
        assert list(chained) == [mine]
        assert chained.count() == 1 and chained.exists()
        assert list(chained.values_list("pk", flat=True)) == [mine.pk]
        assert chained.values("pk")[0] == {"pk": mine.pk}
        assert chained.all()[:1].get() == mine
        assert chained.in_bulk() == {mine.pk: mine}
        assert chained.using("default").first() == mine
    assert Service.objects.for_tenants([tenant_a, tenant_b.pk]).count() == 2
    assert Service.objects.for_tenants(Tenant.objects.filter(pk=tenant_b.pk)).get() == theirs
    assert Service.objects.for_tenant(tenant_a).filter(pk=theirs.pk).first() is None


def test_combining_querysets_keeps_the_narrowest_honest_scope(tenant_a: Tenant, tenant_b: Tenant) -> None:
    mine, theirs = two_services(tenant_a, tenant_b)
    a, b = Service.objects.for_tenant(tenant_a), Service.objects.for_tenant(tenant_b)
    unscoped = Service.objects.filter(code="news")

    assert set(a | b) == {mine, theirs}
    assert set(a.union(b)) == {mine, theirs}
    assert list(a & unscoped) == [mine]  # narrowed by a
    assert list(unscoped & a) == [mine]
    assert list(a.difference(b)) == [mine]
    assert list(a.intersection(unscoped)) == [mine]
    assert list(Service.objects.none()) == []
    assert list(Service.objects.none() | a) == [mine]
    for widened in (a | unscoped, unscoped | a, a ^ unscoped, a.union(unscoped), unscoped.union(a)):
        with pytest.raises(UnscopedQuery):
            list(widened)
    with pytest.raises(UnscopedQuery):
        list(unscoped.difference(a))
    with pytest.raises(UnscopedQuery):  # Django rebuilds a sliced side on the base manager
        a[:1] | unscoped
    assert set(a[:1] | b) == {mine, theirs}


def test_unscoped_reads_every_tenant_and_writes_need_no_scope(tenant_a: Tenant, tenant_b: Tenant) -> None:
    # given rows written without any scope (the row names its tenant)
    mine, theirs = two_services(tenant_a, tenant_b)
    Service.objects.bulk_create([Service(tenant=tenant_b, code="tv", name="TV")])

    # then only an explicit reason reads them all
    everything = Service.objects.unscoped(reason="test").order_by("tenant_id", "code")
    assert [s.code for s in everything] == ["news", "news", "tv"]
    assert everything.filter(code="tv").update(name="TV B") == 1
    mine.name = "Renamed"
    mine.save()  # through the base manager
    mine.refresh_from_db()
    assert mine.name == "Renamed"


def test_unscoped_internals_lasts_only_for_its_block(tenant_a: Tenant) -> None:
    baker.make(Service, tenant=tenant_a, code="news")
    with unscoped_internals(reason="test"):
        assert Service.objects.filter(code="news").count() == 1
    with pytest.raises(UnscopedQuery):
        Service.objects.filter(code="news").count()
    with pytest.raises(KeyError), unscoped_internals(reason="test"):
        raise KeyError  # reset in finally, even when the block raises
    with pytest.raises(UnscopedQuery):
        Service.objects.count()


# --- for_user: Alice (staff of A), the superuser, anyone else ----------------------------


def test_for_user_superuser_sees_all_staff_their_tenants_anyone_else_nothing(
    tenant_a: Tenant, tenant_b: Tenant, alice: User, charlie: User, root: User
) -> None:
    mine, theirs = two_services(tenant_a, tenant_b)
    olga = outsider()  # not staff, but a member: still nothing
    Membership.objects.create(user=olga, tenant=tenant_a, role=Role.ADMIN)
    retired = get_user_model().objects.create_superuser("old-root", "old@example.com", PASSWORD)
    retired.is_active = False
    retired.save()

    def seen(user: User | AnonymousUser) -> set[Service]:
        return set(Service.objects.for_user(user).filter(code="news"))

    assert seen(root) == {mine, theirs}
    assert seen(alice) == {mine}
    assert seen(charlie) == {theirs}
    assert seen(olga) == set()
    assert seen(retired) == set()
    from django.contrib.auth.models import AnonymousUser

    assert seen(AnonymousUser()) == set()


# --- related managers, prefetching, forward keys, deletion --------------------------------


def test_related_managers_and_prefetch_are_scoped_by_their_instance(
    tenant_a: Tenant, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    service = baker.make(Service, tenant=tenant_a, code="news")
    request = baker.make(UnsubscribeRequest, tenant=tenant_a, reference="TEST-0001")
    request.services.add(service)
    step = baker.make(Step, tenant=tenant_a, request=request, kind=Step.Kind.CONFIRM)

    # reverse and many-to-many managers of a tenant-owned instance
    assert list(request.steps.all()) == [step]
    assert request.steps.filter(kind=Step.Kind.CONFIRM).count() == 1
    assert list(request.services.all()) == [service]
    # forward foreign keys (base manager)
    fresh = Step.objects.for_tenant(tenant_a).get(pk=step.pk)
    assert fresh.request == request and fresh.tenant == tenant_a

    # prefetch_related, plain and with a Prefetch queryset
    with django_assert_num_queries(3):
        (loaded,) = UnsubscribeRequest.objects.for_tenant(tenant_a).prefetch_related("services", "steps")
        assert list(loaded.steps.all()) == [step] and list(loaded.services.all()) == [service]
    prefetch = models.Prefetch(
        "steps", queryset=Step.objects.filter(kind=Step.Kind.CONFIRM), to_attr="confirm"
    )
    (loaded,) = UnsubscribeRequest.objects.for_tenant(tenant_a).prefetch_related(prefetch)
    assert loaded.confirm == [step]

    # combined with an unscoped queryset, a related manager's rows are no longer scoped
    with pytest.raises(UnscopedQuery):
        list(request.steps.all() | Step.objects.filter(kind=Step.Kind.CONFIRM))
    assert list(request.steps.all() & Step.objects.filter(kind=Step.Kind.CONFIRM)) == [step]

    # deleting an instance collects its related rows through the base manager
    request.delete()
    assert not Step.objects.for_tenant(tenant_a).exists()


# --- Django internals that read _default_manager ----------------------------------------


class ServiceForm(forms.ModelForm[Service]):
    class Meta:
        model = Service
        fields = ["tenant", "code", "name"]


def test_model_form_unique_validation_works(tenant_a: Tenant, tenant_b: Tenant) -> None:
    baker.make(Service, tenant=tenant_a, code="news")

    duplicate = ServiceForm(data={"tenant": tenant_a.pk, "code": "news", "name": "Again"})
    assert not duplicate.is_valid()
    assert [e.code for e in duplicate.errors.as_data()["__all__"]] == ["unique_together"]

    elsewhere = ServiceForm(data={"tenant": tenant_b.pk, "code": "news", "name": "B's"})
    assert elsewhere.is_valid(), elsewhere.errors

    clash = Suppression(tenant=tenant_a, phone_hash="h", phone_masked="m", scope="*")
    clash.save()
    with pytest.raises(ValidationError):
        Suppression(tenant=tenant_a, phone_hash="h", phone_masked="m", scope="*").full_clean()


def test_admin_scopes_choices_and_filters_and_validates_uniqueness(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, alice: User, root: User
) -> None:
    mine, theirs = two_services(tenant_a, tenant_b)
    baker.make(ReplyRoute, tenant=tenant_a, service=mine, destination="1001")
    baker.make(ReplyRoute, tenant=tenant_b, service=theirs, destination="2002")
    client.force_login(alice)
    # a tenant-owned foreign key offers Alice's tenant's rows only, in forms and list filters
    page = client.get(reverse("admin:inbound_replyroute_add")).content.decode()
    assert "News A" in page and "News B" not in page
    page = client.get(reverse("admin:inbound_replyroute_changelist")).content.decode()
    assert f"service__id__exact={mine.pk}" in page and f"service__id__exact={theirs.pk}" not in page
    # a duplicate code is a form error, not a crash
    response = client.post(
        reverse("admin:unsubscribe_service_add"),
        {"tenant": tenant_a.pk, "code": "news", "name": "Again", "channels": "[]"},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["__all__"]
    assert Service.objects.for_tenant(tenant_a).count() == 1

    client.force_login(root)  # a superuser chooses from every tenant's rows (unscoped, on purpose)
    page = client.get(reverse("admin:inbound_replyroute_add")).content.decode()
    assert "News A" in page and "News B" in page


def test_admin_history_version_page_reads_excluded_fields_and_checks_the_tenant(
    client: Client, tenant_a: Tenant, alice: User, charlie: User
) -> None:
    # given a row whose history leaves its secret out (the version page re-reads it)
    target = baker.make(Target, tenant=tenant_a, name="CRM", signing_secret="s" * 20)
    version = target.history.get()
    url = reverse("admin:unsubscribe_target_simple_history", args=[target.pk, version.history_id])
    # then its tenant's staff read the version, another tenant's do not
    client.force_login(alice)
    assert client.get(url).status_code == 200
    client.force_login(charlie)
    # 403 from the admin's tenant check; 404 where row-level security already hides the row
    assert client.get(url).status_code in (403, 404)


def test_dumpdata_exports_every_tenant(tenant_a: Tenant, tenant_b: Tenant) -> None:
    two_services(tenant_a, tenant_b)
    out = io.StringIO()
    call_command("dumpdata", "unsubscribe.Service", stdout=out)
    assert sorted(row["fields"]["tenant"] for row in json.loads(out.getvalue())) == sorted(
        [tenant_a.pk, tenant_b.pk]
    )


# --- the allow-list: every deliberate escape hatch in the app -----------------------------

ROOT = Path(__file__).resolve().parent.parent
APPS = ("lanzuan", "tenants", "notifications", "unsubscribe")

# (file, what, reason): `.unscoped(reason=...)` and `unscoped_internals(reason=...)` calls
# by their reason; uses of `_default_manager` / `_base_manager` by the attribute.
# Adding one on purpose means adding it here, where review sees it.
ALLOWED = [
    # workers and outbox markers: a task carries only the row's id
    ("notifications/services.py", "unscoped", "a worker delivers a message by its id"),
    ("notifications/services.py", "unscoped", "a worker fails a message by its id"),
    ("notifications/services.py", "unscoped", "a worker retries a message by its id"),
    ("unsubscribe/pipeline/services.py", "unscoped", "marks a request handed to a worker, by its id"),
    ("unsubscribe/pipeline/services.py", "unscoped", "a worker advances a request by its id"),
    ("unsubscribe/pipeline/services.py", "unscoped", "a worker runs a step by its id"),
    ("unsubscribe/subscriptions/services.py", "unscoped", "a worker runs an import by its id"),
    ("unsubscribe/partner/webhooks.py", "unscoped", "a worker sends a delivery by its id"),
    ("unsubscribe/partner/scrub.py", "unscoped", "marks a job handed to a worker, by its id"),
    ("unsubscribe/partner/scrub.py", "unscoped", "a worker runs a job by its id"),
    ("unsubscribe/partner/scrub_chunks.py", "unscoped", "a worker runs a scrub job's chunk by the job's id"),
    (
        "unsubscribe/partner/sendlog_import.py",
        "unscoped",
        "marks a send log import handed to a worker, by its id",
    ),
    ("unsubscribe/partner/sendlog_import.py", "unscoped", "a worker runs a send log import by its id"),
    # sweeps and retention over every tenant
    ("notifications/services.py", "unscoped", "the sweep re-dispatches every tenant's overdue messages"),
    ("unsubscribe/pipeline/services.py", "unscoped", "the sweep dispatches every tenant's due requests"),
    ("unsubscribe/pipeline/services.py", "unscoped", "the sweep re-dispatches every tenant's stuck steps"),
    ("unsubscribe/pipeline/services.py", "unscoped", "the sweep flags every tenant's SLA breaches"),
    ("unsubscribe/deadlines/services.py", "unscoped", "the sweep breaches every tenant's overdue deadlines"),
    ("unsubscribe/suppressions/services.py", "unscoped", "the sweep ends every tenant's pauses"),
    ("unsubscribe/deadlines/services.py", "unscoped", "the sweep locks a request whose deadline passed"),
    ("unsubscribe/partner/webhooks.py", "unscoped", "the sweep sends every tenant's due deliveries"),
    ("unsubscribe/partner/scrub.py", "unscoped", "the sweep requeues and expires every tenant's jobs"),
    ("unsubscribe/partner/scrub.py", "unscoped", "the sweep expires every tenant's scrub results"),
    ("unsubscribe/partner/scrub.py", "unscoped", "the file expiry covers every tenant's scrub lists"),
    ("unsubscribe/subscriptions/services.py", "unscoped", "the file expiry covers every tenant's imports"),
    ("unsubscribe/optout/services.py", "unscoped", "the sweep blanks every tenant's stale numbers"),
    ("unsubscribe/voice/services.py", "unscoped", "beat ends every tenant's stale calls"),
    ("unsubscribe/inbound/services.py", "unscoped", "retention clears every tenant's stored numbers"),
    (
        "unsubscribe/partner/sendlog_import.py",
        "unscoped",
        "the sweep requeues every tenant's send log imports",
    ),
    (
        "unsubscribe/partner/sendlog_import.py",
        "unscoped",
        "the file expiry covers every tenant's send log uploads",
    ),
    # the audit record: which tenants have a chain (to start the others'), superusers' count of breaks
    ("unsubscribe/audit/services.py", "unscoped", "which tenants have an audit chain"),
    ("unsubscribe/attention.py", "unscoped", "superusers see every tenant's audit verdict"),
    # look-ups by a globally unique key from outside
    ("notifications/views.py", "unscoped", "a delivery report is matched by the provider's message id"),
    # platform routing and the cross-tenant hub
    (
        "unsubscribe/inbound/selectors.py",
        "unscoped",
        "platform routing: a shared gateway's reply may be any tenant's",
    ),
    (
        "unsubscribe/inbound/selectors.py",
        "unscoped",
        "platform routing: a shared gateway's reply may be any tenant's",
    ),
    ("unsubscribe/optout/selectors.py", "unscoped", "the hub's code may be any tenant's row"),
    ("unsubscribe/optout/selectors.py", "unscoped", "the hub is cross-tenant: one number, every provider"),
    ("unsubscribe/optout/selectors.py", "unscoped", "the hub is cross-tenant: one number, every provider"),
    ("unsubscribe/optout/selectors.py", "unscoped", "the hub is cross-tenant: one number, every provider"),
    # issue 17: every past request of the number, at every tenant
    ("unsubscribe/optout/selectors.py", "unscoped", "the hub is cross-tenant: one number, every provider"),
    (
        "unsubscribe/optout/views.py",
        "unscoped",
        "the hub filed one request per provider, ids from the session",
    ),
    ("unsubscribe/sendlogs/selectors.py", "unscoped", "the hub is cross-tenant: one number, every provider"),
    # the admin: superusers, and a subquery tied to the outer row's tenant
    ("tenants/admin.py", "unscoped", "a superuser's admin pages show every tenant"),
    ("unsubscribe/admin.py", "unscoped", "a subquery correlated on the outer row's tenant"),
    ("unsubscribe/sendlogs/admin.py", "unscoped", "a subquery correlated on the outer row's tenant"),
    ("unsubscribe/sendlogs/admin.py", "unscoped", "a subquery correlated on the outer row's tenant"),
    # Django and library code that reads _default_manager itself
    ("tenants/scoping.py", "unscoped_internals", "unique checks span the whole table"),
    ("tenants/scoping.py", "unscoped_internals", "constraint checks span the whole table"),
    ("tenants/admin.py", "unscoped_internals", "related-only filter choices: pks from the scoped list"),
    ("tenants/admin.py", "unscoped_internals", "simple-history re-reads a version's excluded fields"),
    ("tenants/management/commands/dumpdata.py", "unscoped_internals", "dumpdata exports every tenant's rows"),
]


def _escape_hatches(name: str, source: str) -> list[tuple[str, str, str]]:
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.Attribute) and node.attr in ("_default_manager", "_base_manager"):
            found.append((name, node.attr, ""))
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called not in ("unscoped", "unscoped_internals"):
            continue
        reason = next((k.value for k in node.keywords if k.arg == "reason"), None)
        text = reason.value if isinstance(reason, ast.Constant) else f"<not a literal: line {node.lineno}>"
        found.append((name, called, str(text)))
    return found


def test_every_unscoped_query_in_the_app_is_on_the_allow_list() -> None:
    files = [
        path for app in APPS for path in sorted((ROOT / app).rglob("*.py")) if "migrations" not in path.parts
    ]
    found = Counter(
        hatch
        for path in files
        for hatch in _escape_hatches(path.relative_to(ROOT).as_posix(), path.read_text())
    )
    allowed = Counter(ALLOWED)
    unlisted = sorted((found - allowed).elements())
    stale = sorted((allowed - found).elements())
    assert not unlisted, f"unscoped queries not on the allow-list in tests/test_scoping.py: {unlisted}"
    assert not stale, f"allow-list entries no longer in the code (remove them): {stale}"


def test_the_scan_sees_every_kind_of_escape_hatch() -> None:
    found = _escape_hatches("sample.py", SAMPLE)
    assert ("sample.py", "unscoped", "why") in found
    assert ("sample.py", "unscoped_internals", "why") in found
    assert ("sample.py", "_default_manager", "") in found
    assert ("sample.py", "_base_manager", "") in found
    assert ("sample.py", "unscoped", "<not a literal: line 3>") in found


SAMPLE = """
Service.objects.unscoped(reason="why").count()
Service.objects.unscoped(reason=REASON).count()
with unscoped_internals(reason="why"):
    Service._default_manager.count()
Service._base_manager.count()
"""


def test_tenant_owned_model_is_abstract_and_every_model_is_found() -> None:
    assert TenantOwnedModel._meta.abstract
    assert {Service, Step, Suppression, UnsubscribeRequest} <= set(MODELS)
    assert len(MODELS) >= 20
