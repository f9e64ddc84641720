"""Hostile clients and floods against a live Turnstile server (docs/reliability.md)."""
