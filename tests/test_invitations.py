"""Owners invite staff by email or one-time link, with a role, and revoke invitations
and memberships (issue 11 item 17). Olivia owns tenant A; Alice administers A, Bob
views A, Charlie administers B."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from tenants.models import Invitation, Membership, Role
from tenants.services import invitation_create

from .conftest import make_member

if TYPE_CHECKING:
    from typing import Any

    from django.contrib.auth.models import User
    from django.core.mail import EmailMessage
    from django.test import Client
    from django.test.client import _MonkeyPatchedWSGIResponse as Response
    from pytest_django import DjangoCaptureOnCommitCallbacks

    from tenants.models import Tenant

NEW_PASSWORD = "a-long-unusual-passphrase-42"


@pytest.fixture
def olivia(tenant_a: Tenant) -> User:
    return make_member("olivia", tenant_a, Role.OWNER)


def invite(client: Client, tenant: Tenant, **data: Any) -> Response:
    return client.post(
        reverse("admin:tenants_invitation_add"),
        {"tenant": tenant.pk, "email": "", "role": Role.AGENT, **data},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="en",
    )


def link_in(page: str) -> str:
    """The copyable link in the owner's message."""
    match = re.search(r'<input[^>]*id="lanzuan-invitation-link"[^>]*>', page) or re.search(
        r'<input[^>]*value="[^"]*/invite/[^"]*"[^>]*id="lanzuan-invitation-link"', page
    )
    assert match, "no invitation link on the page"
    value = re.search(r'value="([^"]+)"', match.group(0))
    assert value is not None
    return value.group(1)


def path_of(link: str) -> str:
    return link[link.index("/invite/") :]


def accept(
    client: Client, link: str, username: str = "dora", password: str = NEW_PASSWORD, **extra: Any
) -> Response:
    return client.post(
        path_of(link),
        {"username": username, "password1": password, "password2": password, **extra},
        HTTP_ACCEPT_LANGUAGE="en",
    )


def test_an_owner_invites_by_email_and_the_invitee_joins_that_tenant_only(
    client: Client,
    olivia: User,
    tenant_a: Tenant,
    tenant_b: Tenant,
    mailoutbox: list[EmailMessage],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    # given Olivia, an owner of A, invites dora@example.com as an agent
    client.force_login(olivia)
    members = client.get(reverse("admin:tenants_membership_changelist")).content.decode()
    assert reverse("admin:tenants_invitation_add") in members  # "Invite someone"
    form = client.get(reverse("admin:tenants_invitation_add"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert form.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = invite(client, tenant_a, email="dora@example.com", role=Role.AGENT)

    # then the link is shown to her (copyable) and emailed
    assert response.status_code == 200
    link = link_in(response.content.decode())
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["dora@example.com"]
    assert link in mailoutbox[0].body

    # when Dora opens the link and chooses a user name and password
    client.logout()
    page = client.get(path_of(link), HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200 and tenant_a.name in page.content.decode()
    done = accept(client, link)

    # then she is a staff member of A, with the role, signed in, and sees A only
    assert done.status_code == 302 and done["Location"] == reverse("admin:index")
    dora = get_user_model().objects.get(username="dora")
    assert dora.is_staff and not dora.is_superuser and dora.email == "dora@example.com"
    assert list(Membership.objects.filter(user=dora).values_list("tenant__slug", "role")) == [
        ("tenant-a", Role.AGENT)
    ]
    tenants_page = client.get(reverse("admin:tenants_tenant_changelist")).content.decode()
    assert tenant_a.name in tenants_page and tenant_b.name not in tenants_page

    # and the link works once
    client.logout()
    again = client.get(path_of(link), HTTP_ACCEPT_LANGUAGE="en")
    assert again.status_code == 410 and "already used" in again.content.decode()


def test_an_invitation_by_link_alone_sends_no_email(
    client: Client, olivia: User, tenant_a: Tenant, mailoutbox: list[EmailMessage]
) -> None:
    client.force_login(olivia)
    response = invite(client, tenant_a, role=Role.VIEWER)
    link = link_in(response.content.decode())
    assert mailoutbox == []
    client.logout()
    assert accept(client, link, username="eve", email="eve@example.com").status_code == 302
    eve = get_user_model().objects.get(username="eve")
    assert eve.email == "eve@example.com"
    assert Membership.objects.get(user=eve).role == Role.VIEWER


def test_only_owners_and_superusers_invite(
    client: Client, alice: User, bob: User, olivia: User, root: User, tenant_a: Tenant
) -> None:
    for user in (alice, bob):  # an administrator and a viewer of A
        client.force_login(user)
        members = client.get(reverse("admin:tenants_membership_changelist")).content.decode()
        assert reverse("admin:tenants_invitation_add") not in members
        assert client.get(reverse("admin:tenants_invitation_add")).status_code == 403
        assert invite(client, tenant_a).status_code == 403
    assert not Invitation.objects.exists()
    client.force_login(root)
    assert "lanzuan-invitation-link" in invite(client, tenant_a, role=Role.OWNER).content.decode()
    assert Invitation.objects.get().role == Role.OWNER


def test_the_service_refuses_a_non_owner(alice: User, tenant_a: Tenant) -> None:
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        invitation_create(tenant=tenant_a, role=Role.OWNER, invited_by=alice)


def test_admins_cannot_make_owners(
    client: Client, alice: User, bob: User, olivia: User, tenant_a: Tenant
) -> None:
    membership = Membership.objects.get(user=bob)
    client.force_login(alice)
    response = client.post(
        reverse("admin:tenants_membership_change", args=[membership.pk]), {"role": Role.OWNER}
    )
    assert response.status_code == 403
    own = Membership.objects.get(user=alice)
    assert (
        client.post(
            reverse("admin:tenants_membership_change", args=[own.pk]), {"role": Role.OWNER}
        ).status_code
        == 403
    )
    assert set(Membership.objects.filter(role=Role.OWNER).values_list("user__username", flat=True)) == {
        "olivia"
    }


def test_an_owner_changes_a_role_with_history(
    client: Client, olivia: User, bob: User, tenant_a: Tenant
) -> None:
    membership = Membership.objects.get(user=bob)
    client.force_login(olivia)
    response = client.post(
        reverse("admin:tenants_membership_change", args=[membership.pk]), {"role": Role.AGENT}
    )
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.AGENT
    assert membership.history.latest().history_user == olivia


def test_invitations_expire(client: Client, olivia: User, tenant_a: Tenant) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.force_login(olivia)
        link = link_in(invite(client, tenant_a).content.decode())
        client.logout()
    with time_machine.travel(start + timedelta(days=8), tick=False):
        assert client.get(path_of(link), HTTP_ACCEPT_LANGUAGE="en").status_code == 410
        refused = accept(client, link)
    assert refused.status_code == 410 and "expired" in refused.content.decode()
    assert not get_user_model().objects.filter(username="dora").exists()


def test_an_owner_revokes_an_invitation(client: Client, olivia: User, tenant_a: Tenant) -> None:
    client.force_login(olivia)
    link = link_in(invite(client, tenant_a).content.decode())
    invitation = Invitation.objects.get()
    response = client.post(
        reverse("admin:tenants_invitation_changelist"),
        {"action": "revoke_invitations", "_selected_action": [invitation.pk]},
    )
    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None and invitation.revoked_by == olivia
    client.logout()
    assert accept(client, link).status_code == 410
    assert not get_user_model().objects.filter(username="dora").exists()
    # audited: who created and who revoked it
    assert [h.history_user for h in invitation.history.order_by("history_date")] == [olivia, olivia]


def test_an_owner_removes_a_member_who_then_loses_access(
    client: Client, olivia: User, bob: User, tenant_a: Tenant
) -> None:
    membership = Membership.objects.get(user=bob)
    client.force_login(olivia)
    response = client.post(
        reverse("admin:tenants_membership_changelist"),
        {"action": "revoke_memberships", "_selected_action": [membership.pk]},
    )
    assert response.status_code == 302
    assert not Membership.objects.filter(user=bob).exists()
    removal = Membership.history.filter(id=membership.pk, history_type="-").get()
    assert removal.history_user == olivia
    client.force_login(bob)
    assert client.get(reverse("admin:unsubscribe_unsubscriberequest_changelist")).status_code == 403


def test_the_last_owner_cannot_be_removed(client: Client, olivia: User, tenant_a: Tenant) -> None:
    membership = Membership.objects.get(user=olivia)
    client.force_login(olivia)
    client.post(
        reverse("admin:tenants_membership_changelist"),
        {"action": "revoke_memberships", "_selected_action": [membership.pk]},
    )
    assert Membership.objects.filter(pk=membership.pk).exists()
    demote = client.post(
        reverse("admin:tenants_membership_change", args=[membership.pk]), {"role": Role.ADMIN}
    )
    assert demote.status_code == 200 and demote.context["adminform"].form.errors["role"]


def test_another_tenant_never_sees_or_touches_the_invitations(
    client: Client, olivia: User, charlie: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    invitation, _token = invitation_create(
        tenant=tenant_a, role=Role.AGENT, invited_by=olivia, email="x@example.com"
    )
    client.force_login(charlie)
    listing = client.get(reverse("admin:tenants_invitation_changelist")).content.decode()
    assert "x@example.com" not in listing
    assert client.get(reverse("admin:tenants_invitation_change", args=[invitation.pk])).status_code == 404
    client.post(
        reverse("admin:tenants_invitation_changelist"),
        {"action": "revoke_invitations", "_selected_action": [invitation.pk]},
    )
    invitation.refresh_from_db()
    assert invitation.revoked_at is None
    # an owner of B cannot invite into A: A is not among the form's tenants
    owner_b = make_member("bea", tenant_b, Role.OWNER)
    client.force_login(owner_b)
    response = invite(client, tenant_a)
    assert "lanzuan-invitation-link" not in response.content.decode()
    assert Invitation.objects.count() == 1


def test_a_weak_password_or_a_taken_user_name_is_a_form_error(
    client: Client, olivia: User, bob: User, tenant_a: Tenant
) -> None:
    client.force_login(olivia)
    link = link_in(invite(client, tenant_a).content.decode())
    client.logout()
    weak = accept(client, link, password="12345678")
    assert weak.status_code == 200 and weak.context["form"].errors
    taken = accept(client, link, username="bob")
    assert taken.status_code == 200 and "taken" in str(taken.context["form"].errors)
    assert Invitation.objects.get().accepted_at is None
    assert accept(client, link, username="dora").status_code == 302


def test_an_unknown_link_is_not_found_and_says_so(client: Client, db: None) -> None:
    response = client.get("/invite/not-a-real-token/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 404
    assert "This invitation link is not valid." in response.content.decode()
