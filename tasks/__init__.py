"""Prefect tasks: thin wrappers over the vaceflow core that add retries, caching, logging, artifacts."""
