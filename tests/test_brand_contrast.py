"""Issue 11 item 13: brand colours meet WCAG AA (4.5:1) against the text on them.

The contrast math (lanzuan/contrast.py), the tenant admin form that refuses a
colour with the ratio and the nearest darker colour that passes, the pages that never
render text below 4.5:1 whatever colour is stored, and the demo tenants.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from lanzuan import contrast
from tenants.models import Membership, Role, Tenant

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}
colours = st.tuples(*[st.integers(0, 255)] * 3).map(contrast.to_hex)


# --- the math ---------------------------------------------------------------------------------------


def test_known_ratios() -> None:
    assert contrast.contrast_ratio("#000000", "#FFFFFF") == pytest.approx(21.0)
    assert contrast.contrast_ratio("#FFFFFF", "#FFFFFF") == pytest.approx(1.0)
    assert contrast.contrast_ratio("#767676", "#FFFFFF") == pytest.approx(4.54, abs=0.01)
    # demo-shop's orange, as reported
    assert contrast.shown_ratio(contrast.contrast_ratio("#D9480F", "#FFFFFF")) == "4.29"


def test_the_shown_ratio_never_rounds_a_failure_up_to_a_pass() -> None:
    assert contrast.shown_ratio(4.4999) == "4.49"
    assert contrast.shown_ratio(4.5) == "4.50"


def test_demo_shops_orange_gets_the_nearest_darker_shade() -> None:
    suggestion = contrast.nearest_darker_passing("#D9480F")
    assert suggestion == "#D3460F"
    assert contrast.contrast_ratio(suggestion, "#FFFFFF") >= 4.5


def test_bad_input_is_a_value_error() -> None:
    for value in ("", "red", "#12345", "#GGGGGG", "123456"):
        with pytest.raises(ValueError, match="not a #RRGGBB colour"):
            contrast.parse(value)


@given(colours)
def test_the_suggested_colour_always_passes_and_is_never_lighter(colour: str) -> None:
    suggestion = contrast.nearest_darker_passing(colour)

    assert contrast.contrast_ratio(suggestion, contrast.WHITE) >= contrast.AA_NORMAL
    assert all(s <= c for s, c in zip(contrast.parse(suggestion), contrast.parse(colour), strict=True))
    if contrast.passes(colour):
        assert suggestion == colour  # a passing colour is left alone


@given(colours)
def test_the_suggestion_is_the_nearest_shade_that_passes(colour: str) -> None:
    suggestion = contrast.nearest_darker_passing(colour)
    r, g, b = contrast.parse(suggestion)
    if suggestion != colour and max(r, g, b) < 255:
        # one step lighter along the same shade fails
        top = max(contrast.parse(colour))
        factor = (max(r, g, b) + 1) / top
        red, green, blue = contrast.parse(colour)
        lighter = contrast.to_hex((round(red * factor), round(green * factor), round(blue * factor)))
        if max(contrast.parse(lighter)) < top:
            assert not contrast.passes(lighter)


@given(colours)
def test_the_pages_palette_never_puts_text_below_aa(colour: str) -> None:
    palette = contrast.brand_palette(colour)

    assert contrast.contrast_ratio(palette.surface, palette.on_surface) >= 4.5
    assert contrast.contrast_ratio(palette.text, contrast.WHITE) >= 4.5
    assert contrast.contrast_ratio(palette.text, contrast.PAGE_BACKGROUND) >= 4.5
    assert palette.on_surface in (contrast.WHITE, contrast.INK)


# --- the tenant admin form ------------------------------------------------------------------------------


@pytest.fixture
def owner_client(client: Client, tenant_a: Tenant, django_user_model: type[User]) -> Client:
    user = django_user_model.objects.create_user(username="olive", password="pw-0123456789", is_staff=True)
    Membership.objects.create(user=user, tenant=tenant_a, role=Role.ADMIN)
    client.force_login(user)
    return client


def _change(client: Client, tenant: Tenant, colour: str, headers: dict[str, Any] = EN) -> Response:
    url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    form = client.get(url, **headers).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and not isinstance(v, bool)}
    data.update({"brand_colour": colour, "terms_zh": "条款", "terms_en": "Terms"})
    return client.post(url, data, **headers)


def test_admin_refuses_a_low_contrast_colour_with_the_ratio_and_a_suggestion(
    owner_client: Client, tenant_a: Tenant
) -> None:
    response = _change(owner_client, tenant_a, "#D9480F")

    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors["brand_colour"]
    message = " ".join(errors)
    assert "4.29:1" in message and "4.5:1" in message and "#D3460F" in message
    assert "#D3460F" in response.content.decode()
    tenant_a.refresh_from_db()
    assert tenant_a.brand_colour == "#1F4FD8"


def test_admin_accepts_the_suggested_colour(owner_client: Client, tenant_a: Tenant) -> None:
    response = _change(owner_client, tenant_a, "#D3460F")

    assert response.status_code == 302
    tenant_a.refresh_from_db()
    assert tenant_a.brand_colour == "#D3460F"


def test_model_validation_refuses_it_too(tenant_a: Tenant) -> None:
    from django.core.exceptions import ValidationError

    tenant_a.brand_colour = "#FFD700"
    with pytest.raises(ValidationError) as caught:
        tenant_a.full_clean()
    assert "#8B7500" in str(caught.value)


# --- the pages ----------------------------------------------------------------------------------------


def _page_colours(html: str) -> dict[str, str]:
    root = re.search(r"<style>:root \{([^}]*)\}</style>", html)
    assert root is not None, html
    style = root.group(1)
    return dict(re.findall(r"--([a-z-]+): (#[0-9A-Fa-f]{6})", style))


@pytest.mark.parametrize("stored", ["#D9480F", "#FFD700", "#777777", "#0B5FFF"])
def test_pages_never_render_unreadable_text_whatever_colour_is_stored(
    client: Client, tenant_a: Tenant, stored: str
) -> None:
    # given a colour stored without the admin's check (saved before it existed, or by a script)
    Tenant.objects.filter(pk=tenant_a.pk).update(brand_colour=stored)

    html = client.get(reverse("unsubscribe-start", args=[tenant_a.slug]), **EN).content.decode()

    found = _page_colours(html)
    assert contrast.contrast_ratio(found["brand"], found["brand-ink"]) >= 4.5
    assert contrast.contrast_ratio(found["brand-text"], contrast.PAGE_BACKGROUND) >= 4.5
    if contrast.passes(stored):
        assert found["brand"] == stored  # a good colour is used as it is


def test_the_demo_tenants_colours_pass(db: None) -> None:
    call_command("seed_demo", verbosity=0)

    for tenant in Tenant.objects.all():
        assert contrast.passes(tenant.brand_colour), (tenant.slug, tenant.brand_colour)
        tenant.full_clean()
