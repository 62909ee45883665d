"""`configure_inbound SLUG twilio-voice|generic-voice …`: the voice half of that command.

configure_inbound acme twilio-voice --auth-token TOKEN   # Twilio's account Auth Token
configure_inbound acme generic-voice --secret SECRET     # or --generate: printed once, last line
configure_inbound acme twilio-voice --disable            # keeps the secret, refuses the webhook
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, OutputWrapper
from django.urls import reverse

from tenants.models import Tenant
from unsubscribe.models import RequestChannel
from unsubscribe.selectors import channel_setting

from .models import VoiceProvider
from .selectors import voice_credential
from .services import voice_credential_set

# The command's provider names, and the option that carries each one's secret.
CLI_PROVIDERS = {"twilio-voice": VoiceProvider.TWILIO, "generic-voice": VoiceProvider.GENERIC}
SECRET_OPTION = {VoiceProvider.TWILIO: "auth_token", VoiceProvider.GENERIC: "secret"}
URL_NAME = {VoiceProvider.TWILIO: "voice:twilio-hook", VoiceProvider.GENERIC: "voice:generic-hook"}


def configure_voice(*, tenant: Tenant, name: str, options: dict[str, Any], stdout: OutputWrapper) -> None:
    provider = CLI_PROVIDERS[name]
    wanted = SECRET_OPTION[provider]
    flag = "--" + wanted.replace("_", "-")
    for option in ("auth_token", "token", "secret"):
        if option != wanted and options.get(option):
            raise CommandError(f"--{option.replace('_', '-')} is not for {name}; use {flag}.")
    secret: str | None = options.get(wanted) or None
    generated = False
    if options.get("generate"):
        if provider == VoiceProvider.TWILIO:
            raise CommandError(f"Twilio issues the Auth Token; pass it with {flag}.")
        if secret:
            raise CommandError("Give a secret or --generate, not both.")
        secret, generated = secrets.token_urlsafe(32), True
    if options.get("disable"):
        enabled = False
    elif options.get("enable") or secret:
        enabled = True
    else:
        raise CommandError(f"Nothing to change: give {flag}, --disable or --enable.")
    if secret is None and voice_credential(tenant=tenant, provider=provider) is None:
        hint = " or --generate" if provider != VoiceProvider.TWILIO else ""
        raise CommandError(f"{name} is not configured for {tenant.slug} yet: give {flag}{hint}.")
    credential = voice_credential_set(tenant=tenant, provider=provider, secret=secret, enabled=enabled)

    url = settings.PUBLIC_BASE_URL + reverse(URL_NAME[provider], kwargs={"tenant_slug": tenant.slug})
    # The rest of the command's output is English: the provider's CLI name, not its translated label.
    stdout.write(f"{name} for {tenant.slug}: {'enabled' if credential.enabled else 'disabled'}.")
    stdout.write(f"Webhook URL: {url}")
    if provider == VoiceProvider.TWILIO:
        status_path = reverse("voice:twilio-status-hook", kwargs={"tenant_slug": tenant.slug})
        stdout.write(f"Status callback URL (call status changes): {settings.PUBLIC_BASE_URL}{status_path}")
    setting = channel_setting(tenant=tenant, channel=RequestChannel.HOTLINE)
    if not (setting.enabled and setting.ivr_enabled):
        stdout.write(
            "The voice menu is off for this tenant: callers hear where else to opt out. Switch it on in "
            "the admin: Channels → Hotline / IVR → self-service voice menu (IVR)."
        )
    if generated:
        stdout.write("The new secret (store it now; it is not shown again):")
        stdout.write(secret or "")
