"""The consent-evidence ledger (issue 16)."""
