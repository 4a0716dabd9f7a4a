"""Prefect flows of rostersync."""
