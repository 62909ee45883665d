"""Send logs: what partners report they sent to a number, violations (a send after an opt-out that
covers it) and people's "I still get messages" reports (issue 17)."""
