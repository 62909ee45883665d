"""``python manage.py configure_inbound SLUG PROVIDER``: set a tenant's reply-SMS gateway credential.

    configure_inbound acme twilio --auth-token TOKEN     # Twilio's account Auth Token
    configure_inbound acme aliyun --token TOKEN          # or --generate: printed once, last line
    configure_inbound acme generic --secret SECRET       # or --generate
    configure_inbound acme twilio --disable              # keeps the secret, refuses the webhook
    configure_inbound acme twilio --enable
    configure_inbound acme twilio-voice --auth-token TOKEN   # the voice menu (unsubscribe.voice.configure)
    configure_inbound acme generic-voice --secret SECRET     # or --generate

Secrets given on the command line are never echoed back.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from tenants.models import Tenant
from unsubscribe.inbound.models import Provider
from unsubscribe.inbound.selectors import inbound_credential
from unsubscribe.inbound.services import inbound_credential_set
from unsubscribe.voice.configure import CLI_PROVIDERS as VOICE_PROVIDERS
from unsubscribe.voice.configure import configure_voice

# Which option carries the secret for each provider (named as the provider names it).
SECRET_OPTION = {Provider.TWILIO: "auth_token", Provider.ALIYUN: "token", Provider.GENERIC: "secret"}


class Command(BaseCommand):
    help = "Set, enable or disable a tenant's credential for inbound SMS webhooks (twilio, aliyun, generic)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the tenant's slug")
        parser.add_argument("provider", choices=[*Provider.values, *VOICE_PROVIDERS])
        parser.add_argument("--auth-token", help="twilio: the account's Auth Token")
        parser.add_argument("--token", help="aliyun: the token in the push URL (?token=…)")
        parser.add_argument("--secret", help="generic: the HMAC-SHA256 signing secret")
        parser.add_argument(
            "--generate", action="store_true", help="aliyun/generic: make a random secret and print it once"
        )
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--disable", action="store_true", help="refuse this provider's webhook")
        state.add_argument("--enable", action="store_true", help="accept it again (the default)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = Tenant.objects.get(slug=options["slug"])
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant with slug {options['slug']!r}.") from None
        if options["provider"] in VOICE_PROVIDERS:
            configure_voice(tenant=tenant, name=options["provider"], options=options, stdout=self.stdout)
            return
        provider = Provider(options["provider"])
        wanted = SECRET_OPTION[provider]
        flag = "--" + wanted.replace("_", "-")
        for option in SECRET_OPTION.values():
            if option != wanted and options.get(option):
                other = "--" + option.replace("_", "-")
                raise CommandError(f"{other} is not for {provider}; use {flag}.")

        secret: str | None = options.get(wanted) or None
        generated = False
        if options["generate"]:
            if provider == Provider.TWILIO:
                raise CommandError(f"Twilio issues the Auth Token; pass it with {flag}.")
            if secret:
                raise CommandError("Give a secret or --generate, not both.")
            secret, generated = secrets.token_urlsafe(32), True

        if options["disable"]:
            enabled = False
        elif options["enable"] or secret:
            enabled = True  # setting a secret means "use it"
        else:
            raise CommandError(f"Nothing to change: give {flag}, --disable or --enable.")
        if secret is None and inbound_credential(tenant=tenant, provider=provider) is None:
            hint = " or --generate" if provider != Provider.TWILIO else ""
            raise CommandError(f"{provider} is not configured for {tenant.slug} yet: give {flag}{hint}.")
        credential = inbound_credential_set(tenant=tenant, provider=provider, secret=secret, enabled=enabled)

        url = settings.PUBLIC_BASE_URL + reverse(
            "inbound:sms-hook", kwargs={"tenant_slug": tenant.slug, "provider": provider.value}
        )
        state = "enabled" if credential.enabled else "disabled"
        self.stdout.write(f"{provider.label} replies for {tenant.slug}: {state}.")
        self.stdout.write(
            f"Webhook URL: {url}" + ("?token=<the token>" if provider == Provider.ALIYUN else "")
        )
        if generated:
            self.stdout.write("The new secret (store it now; it is not shown again):")
            self.stdout.write(secret or "")
