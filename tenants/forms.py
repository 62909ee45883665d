"""Forms for inviting people and accepting an invitation."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.utils.translation import gettext_lazy as _

from .models import Invitation, Membership, Role


class InvitationForm(forms.ModelForm):
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


class MembershipForm(forms.ModelForm):
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
