"""``python manage.py classify_intent``: classify inbound replies, one a line, as JSON lines.

    $ printf 'TD\\n退订成功了吗\\n' | python manage.py classify_intent
    {"text": "TD", "intent": "unsubscribe", "confidence": 0.99, "action": "act"}
    {"text": "退订成功了吗", "intent": "status", "confidence": 0.98, "action": "reply_status"}

The output shape (exactly these four keys, confidence rounded to 2 decimals, UTF-8 not escaped,
one object for every input line including blank ones) is a contract other tools rely on.
``--context clarification`` reads every line as a reply to our clarification question.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandParser

from unsubscribe.inbound.intent import classify


def _keywords(value: str) -> list[str]:
    return [word.strip() for word in re.split(r"[,，]", value) if word.strip()]


def _utf8_lines(stream: TextIO | None) -> Iterable[str]:
    if stream is not None:  # call_command(..., stdin=StringIO(...))
        return stream
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin
    # UTF-8 whatever the locale says; a BOM from Windows editors is not part of the first message;
    # only "\n" ends a line (a stray "\r" inside a message must not split it in two).
    return io.TextIOWrapper(buffer, encoding="utf-8-sig", errors="replace", newline="\n")


class Command(BaseCommand):
    help = (
        "Classify SMS replies read from stdin (one a line) as unsubscribe/resubscribe/help/status/other "
        "JSON lines with the action to take."
    )
    stealth_options = ("stdin",)
    # A pure text filter: it must answer even while the rest of the project has a failing check.
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--keywords-unsubscribe",
            default="",
            metavar="A,B",
            help="the tenant's own unsubscribe keywords, comma-separated",
        )
        parser.add_argument(
            "--keywords-resubscribe",
            default="",
            metavar="C,D",
            help="the tenant's own resubscribe keywords, comma-separated",
        )
        parser.add_argument(
            "--context",
            choices=["clarification"],
            default=None,
            help="every line answers our clarification question (a yes then means unsubscribe)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        unsubscribe_keywords = _keywords(options["keywords_unsubscribe"])
        resubscribe_keywords = _keywords(options["keywords_resubscribe"])
        if options.get("stdout") is None and isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(encoding="utf-8")  # ensure_ascii=False needs it under LANG=C

        for line in _utf8_lines(options.get("stdin")):
            text = line.removesuffix("\n").removesuffix("\r")
            result = classify(
                text,
                extra_unsubscribe_keywords=unsubscribe_keywords,
                extra_resubscribe_keywords=resubscribe_keywords,
                context=options["context"],
            )
            record = {
                "text": text,
                "intent": result.intent,
                "confidence": round(result.confidence, 2),
                "action": result.action,
            }
            self.stdout.write(json.dumps(record, ensure_ascii=False))
            self.stdout.flush()  # one answer per line as it comes, for pipes
