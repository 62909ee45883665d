"""Admin forms for reply SMS. Secrets are write-only: never rendered back, blank keeps them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import InboundCredential, PlatformInboundCredential


class StoredSecretMixin(forms.ModelForm):
    """A tenant-owned credential's write-only `secret`: blank on an existing row keeps
    the stored one (read again from the database, never from the page)."""

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
        if self.instance.pk:
            stored = (
                type(self.instance)
                .objects.for_tenant(self.instance.tenant_id)
                .filter(pk=self.instance.pk)
                .values_list("secret", flat=True)
                .first()
            )
            if stored:
                return stored
        raise forms.ValidationError(_("Enter the secret."), code="required")


class InboundCredentialForm(StoredSecretMixin):
    secret = forms.CharField(
        label=_("Secret"),
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_(
            "Twilio: the account's Auth Token. Aliyun: a token you choose, added to the push URL as "
            "?token=…. Generic: the HMAC secret the gateway signs with. Write-only: never shown again."
        ),
    )

    class Meta:
        model = InboundCredential
        fields = ["tenant", "provider", "secret", "enabled"]


class PlatformInboundCredentialForm(forms.ModelForm):
    """The same write-only secret, for a shared gateway account."""

    secret = forms.CharField(
        label=_("Secret"),
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=InboundCredentialForm.base_fields["secret"].help_text,
    )

    class Meta:
        model = PlatformInboundCredential
        fields = ["account", "provider", "secret", "enabled", "tenants", "reply_tenant"]

    def clean_secret(self) -> str:
        value: str = self.cleaned_data.get("secret") or ""
        if value:
            return value
        if self.instance.pk:
            stored = (
                PlatformInboundCredential.objects.filter(pk=self.instance.pk)
                .values_list("secret", flat=True)
                .first()
            )
            if stored:
                return stored
        raise forms.ValidationError(_("Enter the secret."), code="required")
