"""Unsubscribe requests: filed from every channel (services), found again (selectors)."""
