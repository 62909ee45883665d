"""``python manage.py intent_train``: rebuild the shipped intent model from the corpus (reproducible)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from unsubscribe.inbound.intent import model, training


class Command(BaseCommand):
    help = "Train the reply-intent model on unsubscribe/inbound/intent/data/train.jsonl (thresholds on dev) and save it."
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", type=Path, default=model.MODEL_PATH, help="where to write the .npz")
        parser.add_argument(
            "--data", type=Path, default=training.DATA_DIR, help="folder with the corpus splits"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        params = training.train(options["data"])
        output: Path = options["output"]
        output.parent.mkdir(parents=True, exist_ok=True)
        model.save(output, params)
        self.stdout.write(
            f"{output}: {len(params.vocabulary)} n-grams, temperature {params.temperature}, "
            f"thresholds {params.thresholds}, {time.perf_counter() - started:.1f} s"
        )
