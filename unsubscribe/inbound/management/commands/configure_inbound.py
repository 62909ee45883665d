"""``python manage.py configure_inbound SLUG PROVIDER``: set a tenant's reply-SMS gateway credential.

    configure_inbound acme twilio --auth-token TOKEN     # Twilio's account Auth Token
    configure_inbound acme aliyun --token TOKEN          # or --generate: printed once, last line
    configure_inbound acme generic --secret SECRET       # or --generate
    configure_inbound acme twilio --disable              # keeps the secret, refuses the webhook
    configure_inbound acme twilio --enable
    configure_inbound acme twilio-voice --auth-token TOKEN   # the voice menu (unsubscribe.voice.configure)
    configure_inbound acme generic-voice --secret SECRET     # or --generate

A shared gateway account (one account for many tenants; superusers' business), whose
replies are routed to a tenant by the number, extension code or sign name they were sent to:

    configure_inbound --platform aliyun-main aliyun --generate \
        [--tenants demo-shop,demo-mobile] [--reply-tenant lanzuan]

`--tenants` limits the routing to those tenants (empty string: any tenant); `--reply-tenant`
is the tenant whose SMS gateway answers an unroutable reply with the hub's address.

Secrets given on the command line are never echoed back.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from tenants.models import Tenant
from unsubscribe.inbound.models import PlatformInboundCredential, Provider
from unsubscribe.inbound.selectors import inbound_credential
from unsubscribe.inbound.services import inbound_credential_set, platform_credential_set
from unsubscribe.voice.configure import CLI_PROVIDERS as VOICE_PROVIDERS
from unsubscribe.voice.configure import configure_voice

# Which option carries the secret for each provider (named as the provider names it).
SECRET_OPTION = {Provider.TWILIO: "auth_token", Provider.ALIYUN: "token", Provider.GENERIC: "secret"}


class Command(BaseCommand):
    help = "Set, enable or disable a tenant's credential for inbound SMS webhooks (twilio, aliyun, generic)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "names",
            nargs="+",
            metavar="[SLUG] PROVIDER",
            help="the tenant's slug (not with --platform), the provider",
        )
        parser.add_argument(
            "--platform", metavar="ACCOUNT", help="configure a shared gateway account instead"
        )
        parser.add_argument(
            "--tenants", metavar="A,B", help="--platform: the tenants it routes to ('' = any)"
        )
        parser.add_argument(
            "--reply-tenant", metavar="SLUG", help="--platform: who answers unroutable replies"
        )
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
        names: list[str] = options["names"]
        expected = 1 if options["platform"] else 2
        if len(names) != expected:
            usage = "--platform ACCOUNT PROVIDER" if options["platform"] else "SLUG PROVIDER"
            raise CommandError(f"Give {usage}.")
        if names[-1] in VOICE_PROVIDERS and not options["platform"]:
            try:
                tenant = Tenant.objects.get(slug=names[0])
            except Tenant.DoesNotExist:
                raise CommandError(f"No tenant with slug {names[0]!r}.") from None
            configure_voice(tenant=tenant, name=names[-1], options=options, stdout=self.stdout)
            return
        if names[-1] not in Provider.values:
            known = ", ".join([*Provider.values, *VOICE_PROVIDERS])
            raise CommandError(f"Unknown provider {names[-1]!r}: use {known}.")
        provider = Provider(names[-1])
        if not options["platform"] and (options["tenants"] is not None or options["reply_tenant"]):
            raise CommandError("--tenants and --reply-tenant are for --platform.")
        secret, generated, enabled = self._secret_and_state(provider, options)
        if options["platform"]:
            self._platform(
                options["platform"],
                provider,
                secret=secret,
                generated=generated,
                enabled=enabled,
                options=options,
            )
            return
        try:
            tenant = Tenant.objects.get(slug=names[0])
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant with slug {names[0]!r}.") from None
        if secret is None and inbound_credential(tenant=tenant, provider=provider) is None:
            hint = " or --generate" if provider != Provider.TWILIO else ""
            flag = "--" + SECRET_OPTION[provider].replace("_", "-")
            raise CommandError(f"{provider} is not configured for {tenant.slug} yet: give {flag}{hint}.")
        credential = inbound_credential_set(tenant=tenant, provider=provider, secret=secret, enabled=enabled)

        url = settings.PUBLIC_BASE_URL + reverse(
            "inbound:sms-hook", kwargs={"tenant_slug": tenant.slug, "provider": provider.value}
        )
        state = "enabled" if credential.enabled else "disabled"
        self.stdout.write(f"{provider.label} replies for {tenant.slug}: {state}.")
        self._print_url(url, provider, secret if generated else None)

    def _print_url(self, url: str, provider: Provider, generated: str | None) -> None:
        self.stdout.write(
            f"Webhook URL: {url}" + ("?token=<the token>" if provider == Provider.ALIYUN else "")
        )
        if generated:
            self.stdout.write("The new secret (store it now; it is not shown again):")
            self.stdout.write(generated)

    def _platform(
        self,
        account: str,
        provider: Provider,
        *,
        secret: str | None,
        generated: bool,
        enabled: bool,
        options: dict[str, Any],
    ) -> None:
        tenants: list[Tenant] | None = None
        if options["tenants"] is not None:
            slugs = [s.strip() for s in options["tenants"].split(",") if s.strip()]
            tenants = list(Tenant.objects.filter(slug__in=slugs))
            missing = sorted(set(slugs) - {t.slug for t in tenants})
            if missing:
                raise CommandError(f"No tenant with slug {', '.join(missing)}.")
        reply_tenant = None
        if options["reply_tenant"]:
            reply_tenant = Tenant.objects.filter(slug=options["reply_tenant"]).first()
            if reply_tenant is None:
                raise CommandError(f"No tenant with slug {options['reply_tenant']!r}.")
        existing = PlatformInboundCredential.objects.filter(account=account).first()
        if existing is None and secret is None:
            raise CommandError(f"The shared gateway {account} is not configured yet: give its secret.")
        try:
            credential = platform_credential_set(
                account=account,
                provider=provider,
                secret=secret,
                enabled=enabled,
                tenants=tenants,
                reply_tenant=reply_tenant,
            )
        except (ValueError, ValidationError) as exc:
            raise CommandError(str(exc)) from None
        url = settings.PUBLIC_BASE_URL + reverse(
            "inbound:platform-sms-hook", kwargs={"account": credential.account, "provider": provider.value}
        )
        served = ", ".join(credential.tenants.values_list("slug", flat=True)) or "any tenant"
        state = "enabled" if credential.enabled else "disabled"
        self.stdout.write(f"Shared {provider.label} gateway {account}: {state}; routes to {served}.")
        self._print_url(url, provider, secret if generated else None)

    def _secret_and_state(self, provider: Provider, options: dict[str, Any]) -> tuple[str | None, bool, bool]:
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
        return secret, generated, enabled
