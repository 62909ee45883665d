"""Row history (django-simple-history) as staff read it: field labels, choice labels,
yes/no and times in the tenant's own time zone, not stored codes and UTC microseconds."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

from django.db import models
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from simple_history.template_utils import HistoricalRecordContextHelper

from .models import Tenant

# Labels for stored codes whose meaning belongs to an app above this one (the core's
# suppression scope: "*" is all marketing), by field name; that app registers them at
# start-up (AppConfig.ready).
_field_labels: dict[str, Callable[[str], str]] = {}


def field_label_register(field_name: str, label: Callable[[str], str]) -> None:
    _field_labels[field_name] = label


def history_user_set(instance: models.Model, user: Any) -> None:
    """Name `user` in the history copy that the next save or delete of `instance` writes."""
    instance._history_user = user  # type: ignore[attr-defined]  # the attribute simple-history reads


def object_time_zone(obj: Any) -> dt.tzinfo:
    """The time zone of the tenant a row belongs to (the row itself for a tenant)."""
    tenant = obj if isinstance(obj, Tenant) else getattr(obj, "tenant", None)
    name = getattr(tenant, "time_zone", "") or ""
    try:
        return zoneinfo.ZoneInfo(name) if name else timezone.get_current_timezone()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.get_current_timezone()


def value_display(field: models.Field[Any, Any] | None, value: Any) -> Any:
    """One stored value in words: the choice's label, yes/no, a local time, an empty mark."""
    if value is None or value == "":
        return "—"
    if field is not None and field.choices and not isinstance(value, (list, dict)):
        return dict(field.flatchoices).get(value, value)
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, dt.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)  # the active (tenant's) time zone
        return formats.date_format(value.replace(microsecond=0), "DATETIME_FORMAT")
    if isinstance(value, dt.date):
        return formats.date_format(value, "DATE_FORMAT")
    if field is not None and field.name in _field_labels and isinstance(value, str):
        return _field_labels[field.name](value)
    return value


class LocalizedHistoryHelper(HistoricalRecordContextHelper):  # type: ignore[misc]  # simple-history has no type hints
    def prepare_delta_change_value(self, change: Any, value: Any) -> Any:
        prepared = super().prepare_delta_change_value(change, value)
        try:
            field = self.model._meta.get_field(change.field)
        except Exception:  # a field removed since: show the value as stored
            return prepared
        concrete = field if isinstance(field, models.Field) else None
        if isinstance(prepared, list):
            return [value_display(None, item) for item in prepared]
        return value_display(concrete, prepared)
