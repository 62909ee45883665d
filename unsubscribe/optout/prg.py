"""Post/redirect/get for the public pages' forms.

Every POST answers with a redirect. When the form has errors, what the person typed
(only the fields named in `keep`), the error messages and the status the page
should carry are parked in the session under the page's path; the GET that follows
takes them out again (once) and renders the same form with its errors. So Back and
reload never re-post a form, and Chromium never asks to "Confirm Form Resubmission".

One-time codes are never parked (the code field is not kept), and anything parked
lives only until the very next GET of that page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.forms.utils import ErrorDict, ErrorList
from django.http import HttpRequest, HttpResponseRedirect, QueryDict
from django.shortcuts import redirect

SESSION_PREFIX = "optout:prg:"

F = TypeVar("F", bound=forms.Form)


@dataclass(frozen=True)
class Parked:
    data: dict[str, list[str]]
    errors: dict[str, list[str]]
    status: int
    extra: dict[str, Any] = field(default_factory=dict)


def _key(path: str) -> str:
    return SESSION_PREFIX + path


def back_with_errors(
    request: HttpRequest,
    form: forms.Form | None,
    *,
    status: int,
    keep: Iterable[str] = (),
    extra: dict[str, Any] | None = None,
) -> HttpResponseRedirect:
    """Park the form's state and redirect to the same page (its GET)."""
    data: dict[str, list[str]] = {}
    errors: dict[str, list[str]] = {}
    if form is not None:
        posted = form.data if isinstance(form.data, QueryDict) else QueryDict(mutable=True)
        data = {name: posted.getlist(name) for name in keep if name in posted}
        errors = {name: [str(message) for message in messages] for name, messages in form.errors.items()}
    request.session[_key(request.path)] = {
        "data": data,
        "errors": errors,
        "status": status,
        "extra": extra or {},
    }
    return redirect(request.get_full_path())


def take(request: HttpRequest) -> Parked | None:
    """What the last POST to this page parked, removed from the session; None on a fresh visit."""
    raw = request.session.pop(_key(request.path), None)
    if not isinstance(raw, dict):
        return None
    return Parked(
        data={str(k): [str(v) for v in vs] for k, vs in (raw.get("data") or {}).items()},
        errors={str(k): [str(m) for m in ms] for k, ms in (raw.get("errors") or {}).items()},
        status=int(raw.get("status") or 400),
        extra=dict(raw.get("extra") or {}),
    )


def rebuild(form_class: type[F], parked: Parked | None, **kwargs: Any) -> F:
    """The form as the person left it: bound to what they typed, with the errors they
    were shown (not validated again: errors such as a rate-limit refusal came from
    the service, not from the form)."""
    if parked is None:
        return form_class(**kwargs)
    data = QueryDict(mutable=True)
    for name, values in parked.data.items():
        data.setlist(name, values)
    form = form_class(data, **kwargs)
    # Setting the errors marks the form as cleaned: Django does not validate it again.
    cast(Any, form)._errors = ErrorDict(
        {
            name: ErrorList(messages, error_class="nonfield" if name == NON_FIELD_ERRORS else None)
            for name, messages in parked.errors.items()
        }
    )
    return form
