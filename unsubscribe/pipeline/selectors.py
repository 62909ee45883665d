"""Reads of pipeline steps: where a step works and what its receipt says, for staff
and for the person, each in their language."""

from __future__ import annotations

from django.utils import translation
from django.utils.translation import gettext as _

from unsubscribe.models import Step

from .datasources import get_source, receipt_text


def step_receipt_for_staff(step: Step) -> str:
    """A step's receipt in the active language: its lines, then any note."""
    if step.receipt_lines:
        return receipt_text(step.receipt_lines)
    return step.receipt


def step_staff_label(step: Step) -> str:
    """Where a step works, for staff, in the active language: the source's label or
    the target's name (the snapshot kept on the step when neither is known any more)."""
    if step.source:
        try:
            return str(get_source(step.source).label)
        except KeyError:
            return step.target_name or step.source
    return step.target_name


def step_public_label(step: Step, language: str | None = None) -> str:
    """What a person reads for the place a step works at: a source's public label or
    the target's, in their language. Never the staff name."""
    language = language or translation.get_language() or "en"
    if step.target is not None:
        return step.target.public_label(language)
    with translation.override(language):
        try:
            return str(get_source(step.source).public_label)
        except KeyError:
            return str(_("the provider's systems"))
