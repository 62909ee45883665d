"""Reported deactivations and reassignments of numbers (issue 16)."""
