"""Deadlines by regime: which rules apply to a request, their due times on real
working-day calendars, when each was met, and the breaches the sweep raises."""
