"""Subscriptions: upserted from CSV files and the API, skipping numbers that opted out (services)."""
