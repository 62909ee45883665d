"""Admin forms for reply SMS. Secrets are write-only: never rendered back, blank keeps them."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from tenants.forms import StoredSecretMixin, secret_field

from .models import InboundCredential, PlatformInboundCredential


class InboundCredentialForm(StoredSecretMixin):
    secret = secret_field(
        help_text=_(
            "Twilio: the account's Auth Token. Aliyun: a token you choose, added to the push URL as "
            "?token=…. Generic: the HMAC secret the gateway signs with. Write-only: never shown again."
        ),
    )

    class Meta:
        model = InboundCredential
        fields = ["tenant", "provider", "secret", "enabled"]


class PlatformInboundCredentialForm(StoredSecretMixin):
    """The same write-only secret, for a shared gateway account."""

    secret = secret_field(help_text=InboundCredentialForm.base_fields["secret"].help_text)

    class Meta:
        model = PlatformInboundCredential
        fields = ["account", "provider", "secret", "enabled", "tenants", "reply_tenant"]
