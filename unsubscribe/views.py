"""Public pages for people who want to stop marketing."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext_lazy as _

from tenants.models import Tenant

from . import selectors
from .forms import PhoneField
from .links import reference_from_token
from .models import Step, UnsubscribeRequest


def _tenant(slug: str) -> Tenant:
    return get_object_or_404(Tenant, slug=slug, is_active=True)


def unsubscribe_start(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = _tenant(slug)
    return render(request, "unsubscribe/start.html", {"tenant": tenant})


class StatusForm(forms.Form):
    reference = forms.CharField(label=_("Reference"), max_length=20)
    phone = PhoneField()


def request_status(request: HttpRequest, slug: str) -> HttpResponse:
    """A person checks a request: by the signed link from the receipt, or by the
    reference and the number together (neither alone reveals anything)."""
    tenant = _tenant(slug)
    found: UnsubscribeRequest | None = None
    form = StatusForm(request.POST or None)
    token = request.GET.get("token", "")
    if token:
        reference = reference_from_token(token, tenant.pk)
        if reference:
            found = selectors.request_by_reference(tenant=tenant, reference=reference)
    elif request.method == "POST" and form.is_valid():
        found = selectors.request_for_person(
            tenant=tenant, reference=form.cleaned_data["reference"], phone=form.cleaned_data["phone"]
        )
        if found is None:
            form.add_error(None, _("No request matches this reference and number."))
    context = {"tenant": tenant, "form": form, "found": found}
    if found is not None:
        context["steps"] = list(found.steps.order_by("id"))
        context["Step"] = Step
    return render(request, "unsubscribe/status.html", context)
