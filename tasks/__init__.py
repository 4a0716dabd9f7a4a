"""Prefect tasks of the rostersync flows: thin wrappers around rostersync's logic."""
