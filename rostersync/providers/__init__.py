"""Clients of the rostering providers' HTTP APIs: Clever v3.0 and OneRoster 1.1 REST."""
