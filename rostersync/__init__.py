"""rostersync: keep an Educator Portal in sync with district rosters."""

import os

# Neither Prefect nor great-expectations may send usage data from this project.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Progress lines of the readers, checks and apply reach the Prefect run logs.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "rostersync")

__version__ = "0.1.0"
