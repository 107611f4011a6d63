"""Secrets in the user's keyring (Secret Service on Linux, spoken to directly when that is faster)."""
