"""Suppressions: what may not be sent to a number, added and lifted (services), asked (selectors)."""
