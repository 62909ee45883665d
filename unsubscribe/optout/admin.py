"""The admin of the person's choices: the alternatives a tenant offers beside its opt-out, the
preferences people recorded, the choices counted per day (with a chart), and, for platform
staff only, the platform-wide do-not-market entries (read-only, masked)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from tenants.admin import ReadOnlyAdminMixin, TenantScopedAdmin
from unsubscribe.models import PlatformDoNotMarket, PlatformDoNotMarketEvent

from .models import Alternative, Choice, ChoiceDay, MarketingPreference

CHOICE_COLOURS = {
    Choice.STOP: "#cf222e",
    Choice.PAUSE30: "#0b5fff",
    Choice.PAUSE90: "#8250df",
    Choice.FEWER: "#1a7f37",
    Choice.CHANNEL: "#bf8700",
    Choice.DO_NOT_MARKET: "#57606a",
}
CHART_DAYS = 30


@admin.register(Alternative)
class AlternativeAdmin(TenantScopedAdmin):
    list_display = ["kind", "is_active", "channel", "label_zh", "label_en", "tenant"]
    list_filter = ["tenant", "kind", "is_active"]
    fields = ["tenant", "kind", "is_active", "channel", "label_zh", "label_en"]


@admin.register(MarketingPreference)
class MarketingPreferenceAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["created_at", "phone_masked", "kind", "scope", "channel", "tenant"]
    list_filter = ["tenant", "kind"]
    readonly_fields = ("tenant", "created_at", "phone_masked", "kind", "scope", "channel")
    fields = readonly_fields


def choices_chart(
    rows: list[ChoiceDay], *, today: date, width: int = 900, height: int = 220
) -> dict[str, Any]:
    """Stacked bars per day over the last CHART_DAYS days, as SVG rectangles (like the dashboard)."""
    days = [today - timedelta(days=CHART_DAYS - 1 - i) for i in range(CHART_DAYS)]
    counts: dict[date, dict[str, int]] = defaultdict(dict)
    for row in rows:
        counts[row.day][row.choice] = counts[row.day].get(row.choice, 0) + row.count
    top = max([sum(counts[d].values()) for d in days] + [1])
    slot = width / CHART_DAYS
    bars = []
    for index, day in enumerate(days):
        y = float(height)
        for choice in Choice.values:
            count = counts[day].get(choice, 0)
            if not count:
                continue
            h = count / top * (height - 20)
            y -= h
            bars.append(
                {
                    "x": round(index * slot + 2, 1),
                    "y": round(y, 1),
                    "w": round(slot - 4, 1),
                    "h": round(h, 1),
                    "colour": CHOICE_COLOURS[Choice(choice)],
                    "title": f"{day.isoformat()} {Choice(choice).label}: {count}",
                }
            )
    totals = {c: sum(counts[d].get(c, 0) for d in days) for c in Choice.values}
    legend = [(CHOICE_COLOURS[Choice(c)], Choice(c).label, totals[c]) for c in Choice.values]
    return {"bars": bars, "max": top, "legend": legend}


@admin.register(ChoiceDay)
class ChoiceDayAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """What people chose, per day: counts only. The list shows a chart of the last 30 days."""

    change_list_template = "admin/optout/choiceday/change_list.html"
    list_display = ["day", "choice", "count", "tenant"]
    list_filter = ["tenant", "choice"]
    date_hierarchy = "day"
    readonly_fields = ("tenant", "day", "choice", "count")
    fields = readonly_fields

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        today = timezone.localdate()
        rows = list(self.get_queryset(request).filter(day__gt=today - timedelta(days=CHART_DAYS + 1)))
        chart = choices_chart(rows, today=today)
        return super().changelist_view(request, {**(extra_context or {}), "chart": chart})


class PlatformStaffOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    """Platform-wide rows: superusers read them; nobody adds, edits or deletes them here (only
    the person, from the hub). Tenants' staff never see them."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PlatformDoNotMarket)
class PlatformDoNotMarketAdmin(PlatformStaffOnly):
    list_display = ["phone_masked", "channel", "created_at"]
    fields = ("phone_masked", "channel", "created_at")
    readonly_fields = fields


@admin.register(PlatformDoNotMarketEvent)
class PlatformDoNotMarketEventAdmin(PlatformStaffOnly):
    list_display = ["created_at", "phone_masked", "action", "channel"]
    list_filter = ["action"]
    fields = ("created_at", "phone_masked", "action", "channel", "evidence")
    readonly_fields = fields
