"""The proof pack of one request, for a regulator: one ZIP with `index.html` (a readable,
self-contained summary in the staff member's language), `proof.json` (the data behind it) and
the signed receipt file.

The pack is made of sections. The core registers its own below (`sections.py`); an app above the
core adds its records with `proof_section_register` from its AppConfig.ready (reply SMS do), as
the case page's sources do. A section is a function of the request that returns a
`ProofSection`, or None when it has nothing to say. Its `data` goes into proof.json as it is
(under `sections.<key>`); its facts, tables and text are what index.html shows. Everything in a
section must be free of raw numbers: masked numbers and `phones.redact`ed texts only.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone, translation

from unsubscribe.models import UnsubscribeRequest

from .canonical import instant
from .signed_receipt import receipt_file, receipt_filename, signed_receipt

FORMAT = "lanzuan-proof-pack/1"


@dataclass(frozen=True)
class ProofTable:
    columns: list[str]
    rows: list[list[str]]
    testid: str = ""
    caption: str = ""


@dataclass(frozen=True)
class ProofSection:
    key: str
    title: str
    data: Any  # JSON: integers, strings, booleans, null, lists and objects
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[ProofTable] = field(default_factory=list)
    note: str = ""
    text: str = ""  # shown preformatted (the signed receipt, a hash recipe)


SectionBuilder = Callable[[UnsubscribeRequest, dict[str, Any]], ProofSection | None]

_sections: dict[str, tuple[int, SectionBuilder]] = {}


def proof_section_register(name: str, builder: SectionBuilder, *, order: int = 500) -> None:
    """Add a section to every proof pack. `builder(request, context)` gets the request and the
    pack's shared context (`receipt`: the signed receipt); sections show in `order`."""
    _sections[name] = (order, builder)


def proof_sections(request: UnsubscribeRequest, context: dict[str, Any]) -> list[ProofSection]:
    built = []
    for _order, builder in sorted(_sections.values(), key=lambda item: item[0]):
        section = builder(request, context)
        if section is not None:
            built.append(section)
    return built


@dataclass(frozen=True)
class ProofPack:
    filename: str
    content: bytes


def proof_pack_build(*, request: UnsubscribeRequest) -> ProofPack:
    """The ZIP, in the active language, times on the tenant's clock."""
    from . import sections  # noqa: F401, PLC0415 — registers the core's sections (they import this module)

    generated = timezone.now()
    receipt = signed_receipt(request)
    with timezone.override(request.tenant.zoneinfo):
        built = proof_sections(request, {"receipt": receipt})
        proof = {
            "format": FORMAT,
            "generated_at": instant(generated),
            "reference": request.reference,
            "tenant": request.tenant.slug,
            "language": translation.get_language(),
            "sections": {section.key: section.data for section in built},
        }
        html = render_to_string(
            "proofs/index.html",
            {
                "request": request,
                "tenant": request.tenant,
                "sections": built,
                "generated": generated,
                "receipt_name": receipt_filename(receipt),
                "language": translation.get_language(),
            },
        )
    files = {
        "index.html": html.encode("utf-8"),
        "proof.json": (json.dumps(proof, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode(
            "utf-8"
        ),
        receipt_filename(receipt): receipt_file(receipt),
    }
    stamp = timezone.localtime(generated, timezone.get_fixed_timezone(0)).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return ProofPack(filename=f"lanzuan-proof-{request.reference}.zip", content=buffer.getvalue())
