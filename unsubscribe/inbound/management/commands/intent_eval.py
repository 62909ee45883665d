"""``python manage.py intent_eval``: per-class precision, recall, F1 and the confusion matrix of the
whole classifier (rules and model) on the dev and test splits of the corpus."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from unsubscribe.inbound.intent import training


class Command(BaseCommand):
    help = "Evaluate the reply-intent classifier on the corpus's dev and test splits."
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--split", action="append", choices=["train", "dev", "test"], help="default: dev and test"
        )
        parser.add_argument(
            "--errors", type=int, default=0, metavar="N", help="also list N misclassified replies"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name in options["split"] or ["dev", "test"]:
            report = training.evaluate(name, training.load_split(name))
            self.stdout.write(report.format())
            for row, result in report.wrong[: options["errors"]]:
                self.stdout.write(
                    f"  {row.label} -> {result.intent}/{result.action}: {row.text!r} ({result.matched})"
                )
            self.stdout.write("")
