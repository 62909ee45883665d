"""Intent of inbound SMS replies ("TD", "别再发了", "did my STOP work?"), per ../shared INTENT.md rules.

>>> from unsubscribe.inbound.intent import classify
>>> classify("退訂，謝謝").intent
'unsubscribe'
"""

from .classifier import CLARIFICATION, Action, Intent, IntentResult, classify
from .normalise import normalise, pinyin

__all__ = ["CLARIFICATION", "Action", "Intent", "IntentResult", "classify", "normalise", "pinyin"]
