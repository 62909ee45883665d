"""Admin forms for the voice menu. Secrets are write-only: never rendered back, blank keeps them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from tenants.forms import StoredSecretMixin, secret_field

from .models import VoiceCredential, VoicePrompt
from .prompts import prompt_errors


class VoiceCredentialForm(StoredSecretMixin):
    secret = secret_field(
        help_text=_(
            "Twilio: the account's Auth Token. Generic: the HMAC secret the voice platform signs with. "
            "Write-only: never shown again."
        ),
    )

    class Meta:
        model = VoiceCredential
        fields = ["tenant", "provider", "secret", "enabled", "voice_zh", "voice_en"]


class VoicePromptForm(forms.ModelForm[VoicePrompt]):
    class Meta:
        model = VoicePrompt
        fields = ["tenant", "key", "language", "text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 4, "cols": 80})}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        key, text = cleaned.get("key"), cleaned.get("text")
        if key and text:
            for problem in prompt_errors(key, text):
                self.add_error("text", problem)
        return cleaned
