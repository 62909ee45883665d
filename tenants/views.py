"""Accepting an invitation: the one page of the tenants app outside the admin."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from . import services
from .forms import InvitationAcceptForm


def _page(request: HttpRequest, context: dict[str, object], status: int = 200) -> HttpResponse:
    response = TemplateResponse(
        request,
        "tenants/invitation_accept.html",
        {**admin.site.each_context(request), **context},
        status=status,
    )
    # The token is in the URL: never send it on to another site.
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@sensitive_post_parameters("password1", "password2")
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.invitation_get(token=token)
    reason = services.invitation_unusable_reason(invitation)
    if reason or invitation is None:
        return _page(request, {"title": reason, "unusable": reason}, status=410 if invitation else 404)
    form = InvitationAcceptForm(request.POST or None, invitation=invitation)
    if request.method == "POST" and form.is_valid():
        try:
            membership = services.invitation_accept(
                token=token,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                email=form.cleaned_data.get("email") or "",
            )
        except services.InvitationUnusable as exc:
            return _page(request, {"title": exc.messages[0], "unusable": exc.messages[0]}, status=410)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                target = "password1" if field == "password" else field
                for message in messages:
                    form.add_error(target if target in form.fields else None, message)
        else:
            login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
            return HttpResponseRedirect(reverse("admin:index"))
    return _page(request, {"title": invitation.tenant.name, "invitation": invitation, "form": form})
