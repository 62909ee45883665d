"""State changes for tenants, their keys and their members."""

from __future__ import annotations

import hashlib
import logging
import secrets
import zoneinfo
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from .history import history_user_set
from .models import Invitation, Membership, Role, Tenant, TenantAPIKey

logger = logging.getLogger(__name__)

# How long an invitation link may be used.
INVITATION_TTL = timedelta(days=7)


@transaction.atomic
def tenant_create(*, slug: str, name: str, kind: str = Tenant.Kind.PLATFORM, **policies: object) -> Tenant:
    tenant = Tenant(slug=slug, name=name, kind=kind, **policies)
    tenant.full_clean()
    tenant.save()
    return tenant


def api_key_create(
    *, tenant: Tenant, name: str, expiry_date: datetime | None = None
) -> tuple[TenantAPIKey, str]:
    """Returns the key row and the key itself, which is never stored and cannot be shown again."""
    if not name.strip():
        raise ValidationError("An API key needs a name.")
    api_key, key = TenantAPIKey.objects.create_key(tenant=tenant, name=name.strip(), expiry_date=expiry_date)
    assert isinstance(api_key, TenantAPIKey)
    return api_key, key


# --- members ------------------------------------------------------------------------------


def may_manage_members(user: Any, tenant: Tenant | int) -> bool:
    """Owners of the tenant and superusers invite, change roles and remove members."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    return Membership.objects.filter(
        user_id=user.pk, tenant_id=tenant_id, role=Role.OWNER, tenant__is_active=True
    ).exists()


def _require_manager(user: Any, tenant: Tenant | int) -> None:
    if not may_manage_members(user, tenant):
        raise PermissionDenied(_("Only the tenant's owners can manage its members."))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_link(token: str) -> str:
    return settings.PUBLIC_BASE_URL + reverse("tenants:invitation-accept", args=[token])


def invitation_get(*, token: str) -> Invitation | None:
    """The invitation a link's token belongs to, whatever its status."""
    if not token or len(token) > 100:
        return None
    return Invitation.objects.select_related("tenant").filter(token_hash=_token_hash(token)).first()


def _send_invitation_email(invitation_id: int, link: str) -> None:
    invitation = Invitation.objects.select_related("tenant").get(pk=invitation_id)
    tenant = invitation.tenant
    with translation.override(tenant.default_language):
        subject = _("You are invited to %(tenant)s on Lanzuan") % {"tenant": tenant.name}
        body = _(
            "You are invited to join %(tenant)s on Lanzuan as %(role)s.\n\n"
            "Open this link to choose your user name and password (it works once, until %(expires)s):\n"
            "%(link)s\n\n"
            "If you did not expect this invitation, ignore this email."
        ) % {
            "tenant": tenant.name,
            "role": invitation.get_role_display(),
            "expires": timezone.localtime(invitation.expires_at, _tenant_zone(tenant)).strftime(
                "%Y-%m-%d %H:%M"
            ),
            "link": link,
        }
    try:
        send_mail(subject, body, None, [invitation.email])
    except Exception:  # a mail server's errors are many kinds; the owner has the link anyway
        logger.warning("invitation %s: the email could not be sent", invitation_id, exc_info=True)


def _tenant_zone(tenant: Tenant) -> Any:
    try:
        return zoneinfo.ZoneInfo(tenant.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.get_default_timezone()


@transaction.atomic
def invitation_create(
    *, tenant: Tenant, role: str, invited_by: Any, email: str = "", ttl: timedelta = INVITATION_TTL
) -> tuple[Invitation, str]:
    """Invite one person to the tenant with a role. Returns the invitation and its
    one-time token (never stored: show the link now). With an email address the
    link is also mailed, after commit. Raises PermissionDenied unless `invited_by`
    owns the tenant (or is a superuser), ValidationError on a bad role or address,
    or when the address already belongs to a member."""
    _require_manager(invited_by, tenant)
    if role not in Role.values:
        raise ValidationError({"role": _("Choose a role from the list.")})
    email = (email or "").strip()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ValidationError({"email": _("Enter a valid email address.")}) from None
        if Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists():
            raise ValidationError({"email": _("Someone with this email address is already a member.")})
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    invitation = Invitation(
        tenant=tenant,
        email=email,
        role=role,
        token_hash=_token_hash(token),
        invited_by=invited_by,
        created_at=now,
        expires_at=now + ttl,
    )
    history_user_set(invitation, invited_by)
    invitation.save()
    if email:
        link, invitation_id = invitation_link(token), invitation.pk
        transaction.on_commit(lambda: _send_invitation_email(invitation_id, link))
    return invitation, token


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, acting_user: Any) -> Invitation:
    """Stop a pending invitation's link from working. An accepted invitation is not
    revoked: remove the membership instead."""
    _require_manager(acting_user, invitation.tenant_id)
    locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.accepted_at is not None:
        raise ValidationError(_("This invitation was already accepted; remove the membership instead."))
    if locked.revoked_at is None:
        locked.revoked_at = timezone.now()
        locked.revoked_by = acting_user
        history_user_set(locked, acting_user)
        locked.save(update_fields=["revoked_at", "revoked_by"])
    return locked


class InvitationUnusable(ValidationError):
    """The link was used, revoked or has expired; str() is fit to show."""


def invitation_unusable_reason(invitation: Invitation | None) -> str:
    """Why a link cannot be used (empty when it can)."""
    status = invitation.status() if invitation is not None else None
    if status is None:
        return _("This invitation link is not valid.")
    if status == Invitation.Status.ACCEPTED:
        return _("This invitation was already used.")
    if status == Invitation.Status.REVOKED:
        return _("This invitation was revoked. Ask the owner for a new one.")
    if status == Invitation.Status.EXPIRED:
        return _("This invitation has expired. Ask the owner for a new one.")
    return ""


@transaction.atomic
def invitation_accept(*, token: str, username: str, password: str, email: str = "") -> Membership:
    """The invitee chooses a user name and password: a new staff account, a member of
    the invitation's tenant only, with its role. The account's email is the invited
    address, else `email` (optional). Raises InvitationUnusable, or ValidationError
    on the user name, password or email (keyed by field)."""
    found = invitation_get(token=token)
    invitation = Invitation.objects.select_for_update().get(pk=found.pk) if found is not None else None
    reason = invitation_unusable_reason(invitation)
    if reason or invitation is None:
        raise InvitationUnusable(reason)
    User = get_user_model()
    username = username.strip()
    address = invitation.email or (email or "").strip()
    user = User(username=username, email=address, is_staff=True, is_active=True)
    errors: dict[str, list[str]] = {}
    if address and not invitation.email:
        try:
            validate_email(address)
        except ValidationError:
            errors["email"] = [_("Enter a valid email address.")]
    try:
        user.clean_fields(exclude=["password"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if User.objects.filter(username__iexact=username).exists():
        errors.setdefault("username", []).append(_("This user name is taken; choose another."))
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise ValidationError(errors)
    user.set_password(password)
    user.save()
    membership = Membership(user=user, tenant=invitation.tenant, role=invitation.role)
    history_user_set(membership, user)
    membership.save()
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    history_user_set(invitation, user)
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


def _other_owners(membership: Membership) -> bool:
    return (
        Membership.objects.filter(tenant_id=membership.tenant_id, role=Role.OWNER, user__is_active=True)
        .exclude(pk=membership.pk)
        .exists()
    )


@transaction.atomic
def membership_set_role(*, membership: Membership, role: str, acting_user: Any) -> Membership:
    """Change a member's role. Owners only; a tenant keeps at least one owner."""
    _require_manager(acting_user, membership.tenant_id)
    if role not in Role.values:
        raise ValidationError({"role": _("Choose a role from the list.")})
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.role == Role.OWNER and role != Role.OWNER and not _other_owners(locked):
        raise ValidationError(
            {"role": _("A tenant needs at least one owner; make someone else owner first.")}
        )
    if locked.role != role:
        locked.role = role
        history_user_set(locked, acting_user)
        locked.save(update_fields=["role"])
    return locked


@transaction.atomic
def membership_revoke(*, membership: Membership, acting_user: Any) -> None:
    """Remove a person from a tenant: they lose access to its data at once. Owners
    only; the last owner cannot be removed. The removal stays in the history."""
    _require_manager(acting_user, membership.tenant_id)
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.role == Role.OWNER and not _other_owners(locked):
        raise ValidationError(
            _("%(user)s is the tenant's last owner and cannot be removed.") % {"user": locked.user}
        )
    history_user_set(locked, acting_user)
    locked.delete()
