"""Proof anyone can check (issue 15): the person's signed receipt (`receipts.py`) and the
proof pack of a request for a regulator (`pack.py`, its sections in `sections.py`)."""
