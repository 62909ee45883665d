"""Forms for inviting people and accepting an invitation, and the write-only secret every
credential form shares (SMS and voice gateways, reply-SMS webhooks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.utils.translation import gettext_lazy as _

from .models import Invitation, Membership, Role
from .scoping import TenantOwnedModel

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise


class InvitationForm(forms.ModelForm[Invitation]):
    class Meta:
        model = Invitation
        fields = ["tenant", "email", "role"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].help_text = _(
            "Owners manage members; administrators configure; agents file and retry requests; viewers read."
        )
        self.fields["role"].choices = Role.choices  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tenant, email = data.get("tenant"), (data.get("email") or "").strip()
        if (
            tenant is not None
            and email
            and Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists()
        ):
            self.add_error("email", _("Someone with this email address is already a member."))
        return data


class MembershipForm(forms.ModelForm[Membership]):
    class Meta:
        model = Membership
        fields = ["user", "tenant", "role"]

    def clean_role(self) -> str:
        role: str = self.cleaned_data["role"]
        current = self.instance
        if (
            current.pk
            and current.role == Role.OWNER
            and role != Role.OWNER
            and not Membership.objects.filter(tenant_id=current.tenant_id, role=Role.OWNER)
            .exclude(pk=current.pk)
            .exists()
        ):
            raise forms.ValidationError(
                _("A tenant needs at least one owner; make someone else owner first.")
            )
        return role


class InvitationAcceptForm(forms.Form):
    username = forms.CharField(
        label=_("User name"),
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text=_("Letters, digits and @ . + - _ only."),
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    email = forms.EmailField(
        label=_("Email address"),
        required=False,
        help_text=_("Optional. Staff are emailed when a request needs attention."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password1 = forms.CharField(
        label=_("Password"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: Any, invitation: Invitation, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if invitation.email:
            del self.fields["email"]  # the invited address is the account's

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password2") and data["password1"] != data["password2"]:
            self.add_error("password2", _("The two passwords differ."))
        return data


def secret_field(*, help_text: _StrOrPromise, max_length: int = 200) -> forms.CharField:
    """A write-only secret: never rendered back into the page, never autofilled."""
    return forms.CharField(
        label=_("Secret"),
        required=False,
        max_length=max_length,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=help_text,
    )


class StoredSecretMixin(forms.ModelForm[Any]):  # Any: every credential model
    """A credential's write-only `secret`: blank on an existing row keeps the stored one
    (read again from the database, never from the page: the instance may be a copy the
    form has not touched). A tenant-owned row is read within its tenant.

    `secret_required`: blank with nothing stored is an error ("Enter the secret."); a
    form whose rows may have no secret (a gateway that needs none) sets it to False and
    stores an empty one."""

    secret_required: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.secret and "secret" in self.fields:
            self.fields["secret"].help_text = _(
                "A secret is stored (never shown). Leave empty to keep it, or type a new one to replace it."
            )

    def clean_secret(self) -> str:
        value: str = self.cleaned_data.get("secret") or ""
        if value:
            return value
        stored = self._stored_secret() if self.instance.pk else ""
        if stored or not self.secret_required:
            return stored
        raise forms.ValidationError(_("Enter the secret."), code="required")

    def _stored_secret(self) -> str:
        model = type(self.instance)
        if isinstance(self.instance, TenantOwnedModel):
            rows = model.objects.for_tenant(self.instance.tenant_id)
        else:
            rows = model.objects.all()
        stored: str | None = rows.filter(pk=self.instance.pk).values_list("secret", flat=True).first()
        return stored or ""
