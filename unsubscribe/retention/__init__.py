"""Retention: finished requests' records purged past the tenant's retention (services)."""
