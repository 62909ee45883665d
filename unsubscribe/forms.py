"""Admin and page forms. Validation messages are translatable."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from lanzuan import phones
from lanzuan.outbound import UnsafeURL, check_url
from tenants.models import Tenant

from .models import ChannelSetting, RequestChannel, Service, Target


class PhoneField(forms.CharField):
    """Accepts what people type and cleans it to E.164 (default region CN)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault("label", _("Mobile number"))
        super().__init__(**kwargs)
        self.widget.input_type = "tel"
        self.widget.attrs.update({"autocomplete": "tel", "inputmode": "tel"})

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        if not value and not self.required:
            return ""
        try:
            return phones.normalise(value)
        except phones.InvalidPhoneNumber as exc:
            raise forms.ValidationError(str(exc), code="invalid_phone") from None


class _UnechoedTelInput(forms.TextInput):
    """A number input that never writes back what was typed: the page that answers a
    look-up holds the number masked only."""

    input_type = "tel"

    def format_value(self, value: Any) -> str | None:
        return None


class CaseLookupForm(forms.Form):
    """Staff look up a number's case: normalised here, digested by the view, never stored."""

    number = PhoneField(
        label=_("Number"),
        widget=_UnechoedTelInput,
        help_text=_("Any usual form: 138 0013 8000, +86 138 0013 8000."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["number"].widget.attrs["autocomplete"] = "off"  # no browser keeps it either


# Channels staff file on a person's behalf. A held reply SMS is filed from the
# inbound message itself (inbound_message_file_request), which may use a channel
# switched off since: that is the only place staff act on a switched-off channel.
FILING_CHANNELS = (RequestChannel.HOTLINE, RequestChannel.APP, RequestChannel.PARTNER, RequestChannel.EMAIL)


class FileRequestForm(forms.Form):
    """An agent files a request on a caller's behalf (hotline, app, partner).

    Only channels the tenant has switched on are offered, the first of them chosen."""

    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), label=_("Tenant"))
    phone = PhoneField()
    channel = forms.ChoiceField(label=_("Channel"), choices=())
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.none(),
        required=False,
        label=_("Services"),
        help_text=_("Leave empty to stop all marketing."),
        widget=forms.CheckboxSelectMultiple,
    )
    agent_note = forms.CharField(
        label=_("How the caller was verified"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, tenants: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants  # type: ignore[attr-defined]
        self.fields["services"].queryset = Service.objects.for_tenants(tenants)  # type: ignore[attr-defined]
        # Which filing channels each tenant has on (no setting row: on).
        self.enabled_by_tenant: dict[int, set[str]] = {tenant.pk: set(FILING_CHANNELS) for tenant in tenants}
        for setting in ChannelSetting.objects.for_tenants(tenants).filter(channel__in=FILING_CHANNELS):
            if not setting.enabled:
                self.enabled_by_tenant.setdefault(setting.tenant_id, set()).discard(setting.channel)
        offered = set().union(*self.enabled_by_tenant.values()) if self.enabled_by_tenant else set()
        if tenants.count() == 1:
            only = tenants.first()
            self.fields["tenant"].initial = only
            offered = self.enabled_by_tenant.get(only.pk, set())
        choices = [(c.value, c.label) for c in FILING_CHANNELS if c in offered]
        self.fields["channel"].choices = choices  # type: ignore[attr-defined]
        if choices:
            self.fields["channel"].initial = choices[0][0]
        else:
            self.fields["channel"].help_text = _(
                "Every channel staff can file on is switched off for this tenant (Channels)."
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tenant = data.get("tenant")
        channel = data.get("channel")
        if tenant is not None and channel and channel not in self.enabled_by_tenant.get(tenant.pk, set()):
            self.add_error(
                "channel",
                _("%(tenant)s has switched unsubscribing by %(channel)s off; choose another channel.")
                % {"tenant": tenant.name, "channel": RequestChannel(channel).label},
            )
        for service in data.get("services") or []:
            if tenant is not None and service.tenant_id != tenant.pk:
                self.add_error(
                    "services", _("%(service)s is not a service of this tenant.") % {"service": service}
                )
        return data


class TargetForm(forms.ModelForm[Target]):
    signing_secret = forms.CharField(
        label=_("Signing secret"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Write-only. Leave empty to keep the current secret."),
    )

    class Meta:
        model = Target
        fields = [
            "tenant",
            "name",
            "public_label_zh",
            "public_label_en",
            "purpose",
            "kind",
            "url",
            "signing_secret",
            "timeout_seconds",
            "max_attempts",
            "is_active",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        if kind == Target.Kind.HTTP:
            url = data.get("url") or ""
            if not url:
                self.add_error("url", _("Enter the endpoint URL."))
            else:
                try:
                    check_url(url)
                except UnsafeURL as exc:
                    self.add_error("url", str(exc))
            if not data.get("signing_secret") and not (self.instance.pk and self.instance.signing_secret):
                self.add_error("signing_secret", _("Set a signing secret so the provider can verify calls."))
        return data

    def save(self, commit: bool = True) -> Target:
        target = super().save(commit=False)
        new_secret = self.cleaned_data.get("signing_secret")
        if not new_secret and self.instance.pk:
            # The tenant the row had when the form opened (the form may move it).
            stored_in = self.initial.get("tenant", target.tenant_id)
            target.signing_secret = (
                Target.objects.for_tenant(stored_in).get(pk=self.instance.pk).signing_secret
            )
        if commit:
            target.save()
        return target


class SubscriptionImportForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), label=_("Tenant"))
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_(
            "Columns: phone, service, consent_source, consent_at; optional consent evidence: "
            "consent_method, consent_wording, consent_order_id, consent_page_version, consent_ip, "
            "consent_captured_by"
        ),
    )

    def __init__(self, *args: Any, tenants: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants  # type: ignore[attr-defined]
        if tenants.count() == 1:
            self.fields["tenant"].initial = tenants.first()
