"""Unsubscribe-intent classification of inbound SMS replies ("TD", "别再发了", "please stop texting me").

>>> from unsubscribe.intent import classify
>>> classify("退訂，謝謝").intent
'unsubscribe'
"""

from .classifier import CLARIFY_THRESHOLD, Action, IntentResult, classify, normalise
from .keywords import Intent

__all__ = ["CLARIFY_THRESHOLD", "Action", "Intent", "IntentResult", "classify", "normalise"]
