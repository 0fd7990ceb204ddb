"""Prefect tasks: thin wrappers over the vaceflow core (retries, caching, logs, artifacts)."""
