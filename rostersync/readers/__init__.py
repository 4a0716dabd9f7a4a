"""Readers that turn a provider's roster files into a Roster."""
