"""Two demo tenants with services, subscribers, an admin each and a superuser.
Idempotent: running it again changes nothing that exists. No targets: Lanzuan's own
records (subscriptions, profiles, …) are ended and erased by built-in steps for every
tenant; targets are for a provider's other systems."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from lanzuan import phones
from tenants.models import Membership, Role, Tenant
from unsubscribe.consents.services import ConsentEvidence, consents_record
from unsubscribe.models import ChannelSetting, ConsentRecord, Service, SubscriberProfile, Subscription
from unsubscribe.reassignments.services import number_events_record

DEMO_PASSWORD = "lanzuan-demo"

TENANTS: list[dict[str, Any]] = [
    {
        "slug": "demo-mobile",
        "name": "蓝海移动 BlueSea Mobile",
        "name_en": "BlueSea Mobile",
        "kind": Tenant.Kind.OPERATOR,
        "brand_colour": "#0B5FFF",
        "allow_resubscribe": True,
        "terms_zh": "退订后，我们将立即停止向您的号码发送所选营销信息，并在确认后删除用于营销的个人信息"
        "（姓名、兴趣、城市）。退订记录仅以加密摘要形式保留，用于确保不再向您发送。您可随时重新订阅。",
        "terms_en": "Once you unsubscribe we stop the chosen marketing to your number at once and, after "
        "confirming, delete the personal data used for marketing (name, interests, city). We keep only a "
        "keyed hash of your number so that we never message you again. You may re-subscribe at any time.",
        # (name, code, English name for the English voice menu)
        "services": [
            ("流量优惠 Data offers", "data-offers", "Data offers"),
            ("蓝钻会员 Blue Diamond club", "blue-diamond", "Blue Diamond club"),
        ],
        "admin": "mobile-admin",
        "channels": {
            "sms": {"reply_numbers": "10690001, 1069000188", "extra_keywords": "QX, 取消营销"},
            "app": {"app_path_zh": "我的 → 设置 → 消息推送", "app_path_en": "Me → Settings → Notifications"},
            "hotline": {
                "hotline_number": "400-800-1234",
                "hotline_hours": "9:00–21:00",
                "hotline_menu_key": "3",
            },
        },
    },
    {
        "slug": "demo-shop",
        "name": "优选商城 YouXuan Shop",
        "name_en": "YouXuan Shop",
        "kind": Tenant.Kind.PLATFORM,
        "brand_colour": "#D3460F",  # #D9480F gave 4.3:1 with white text; the nearest that passes
        "allow_resubscribe": False,
        "erasure_mode": Tenant.ErasureMode.ANONYMISE,
        "erasure_delay_hours": 24,
        "default_language": "zh-hans",
        "terms_zh": "退订不可撤销：我们将停止所有营销短信和推送，并在24小时内匿名化您的营销资料。",
        "terms_en": "Unsubscribing is final: we stop all marketing SMS and pushes and anonymise your "
        "marketing profile within 24 hours.",
        "services": [
            ("会员促销 Member promotions", "promotions", "Member promotions"),
            ("个性化推荐 Personalised picks", "picks", "Personalised picks"),
        ],
        "admin": "shop-admin",
        "channels": {
            "sms": {"reply_numbers": "10690002"},
            "app": {
                "app_path_zh": "个人中心 → 隐私 → 个性化推荐",
                "app_path_en": "Profile → Privacy → Personalised picks",
            },
            "hotline": {"enabled": False},
        },
    },
]

SUBSCRIBERS = ["13800138000", "13912345678", "15000001111", "18600002222"]
# The demo's consent evidence (issue 16): the words a sign-up form showed, and a number that
# changed hands after its holder consented (its consents show as void).
DEMO_WORDING = "我同意接收本公司的营销短信，可随时回复 TD 退订。"
DEMO_REASSIGNED = "18600002222"


class Command(BaseCommand):
    help = "Load two demo tenants, their services, subscribers and admins (idempotent)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)
        for spec in TENANTS:
            tenant, _created = Tenant.objects.get_or_create(
                slug=spec["slug"],
                defaults={
                    k: v for k, v in spec.items() if k not in ("slug", "services", "admin", "channels")
                },
            )
            services = []
            if spec.get("name_en") and not tenant.name_en:  # a demo seeded before the field existed
                tenant.name_en = spec["name_en"]
                tenant.save(update_fields=["name_en"])
            for name, code, name_en in spec["services"]:
                service, _c = Service.objects.for_tenant(tenant).get_or_create(
                    tenant=tenant,
                    code=code,
                    defaults={"name": name, "name_en": name_en, "channels": ["sms", "app"]},
                )
                services.append(service)
            for channel, values in spec["channels"].items():
                ChannelSetting.objects.for_tenant(tenant).get_or_create(
                    tenant=tenant, channel=channel, defaults=values
                )
            for number in SUBSCRIBERS:
                e164 = phones.normalise(number)
                digest = phones.tenant_phone_hash(tenant.pk, e164)
                for service in services:
                    Subscription.objects.for_tenant(tenant).get_or_create(
                        service=service,
                        phone_hash=digest,
                        defaults={
                            "tenant": tenant,
                            "phone": e164,
                            "phone_masked": phones.mask(e164),
                            "consent_source": "demo signup",
                            "consent_at": timezone.now(),
                        },
                    )
                SubscriberProfile.objects.for_tenant(tenant).get_or_create(
                    tenant=tenant,
                    phone_hash=digest,
                    defaults={
                        "phone": e164,
                        "phone_masked": phones.mask(e164),
                        "display_name": "演示用户",
                        "interests": "流量, 视频会员",
                        "city": "杭州",
                    },
                )
            self._consents(tenant, services)
            user = User.objects.filter(username=spec["admin"]).first()
            if user is None:
                user = User.objects.create_user(spec["admin"], password=DEMO_PASSWORD, is_staff=True)
            Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": Role.OWNER})
        self.stdout.write(self.style.SUCCESS("Demo data ready."))

    def _consents(self, tenant: Tenant, services: list[Service]) -> None:
        """Each demo subscriber's consent on the ledger, and one reported reassignment."""
        if ConsentRecord.objects.for_tenant(tenant).exists():
            return
        given_at = timezone.now() - timedelta(days=30)
        consents = []
        for number in SUBSCRIBERS:
            e164 = phones.normalise(number)
            for service in services:
                consents.append(
                    ConsentEvidence(
                        service_id=service.pk,
                        phone_hash=phones.tenant_phone_hash(tenant.pk, e164),
                        phone_masked=phones.mask(e164),
                        given_at=given_at,
                        source=ConsentRecord.Source.FORM,
                        wording=DEMO_WORDING,
                        page_version="signup-v3",
                    )
                )
        consents_record(tenant=tenant, consents=consents, captured_by="demo signup")
        day = (timezone.now() - timedelta(days=7)).astimezone(tenant.zoneinfo).date()
        number_events_record(
            tenant=tenant,
            items=[{"phone": DEMO_REASSIGNED, "event": "reassigned", "date": day.isoformat()}],
            reported_by="演示：运营商号码数据",
        )
