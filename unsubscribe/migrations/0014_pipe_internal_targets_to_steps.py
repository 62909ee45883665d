"""Lanzuan's own records are built-in steps now, for every tenant: the internal targets
(seed_demo's "Lanzuan subscriptions", …) would end and erase the same records twice.
Their steps become built-in steps of the same source (receipts kept), then they go."""

from django.db import migrations


def internal_targets_to_steps(apps, schema_editor):  # type: ignore[no-untyped-def]
    Target = apps.get_model("unsubscribe", "Target")
    Step = apps.get_model("unsubscribe", "Step")
    internal = Target.objects.filter(kind="internal")
    for step in Step.objects.filter(target__in=internal).select_related("target").order_by("id"):
        source = step.target.internal_source
        duplicate = Step.objects.filter(
            request_id=step.request_id, kind=step.kind, source=source, target__isnull=True
        ).exists()
        if duplicate:  # two targets for one source: the first one's step is the receipt
            step.delete()
            continue
        step.source = source
        step.target = None
        step.save(update_fields=["source", "target"])
    internal.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("unsubscribe", "0013_pipe_builtin_steps"),
    ]

    operations = [
        migrations.RunPython(internal_targets_to_steps, migrations.RunPython.noop),
    ]
