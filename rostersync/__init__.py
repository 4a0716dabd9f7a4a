"""rostersync: keep an Educator Portal in sync with district rosters."""

import logging
import os

# Neither Prefect nor great-expectations may send usage data from this project.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Progress lines of the readers, checks, provider clients and apply reach the
# Prefect run logs. Prefect attaches its handlers to the logger but leaves its
# level, so without a level of its own it would drop INFO lines like the root.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "rostersync")
# The emulators and the command line log outside flow runs, where Prefect's API
# handler has no run to attach a line to.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# Without PREFECT_API_URL each command starts a temporary Prefect server. It
# takes 10 to 15 s on an idle machine, and Prefect's default wait is 20 s.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
if logging.getLogger("rostersync").level == logging.NOTSET:
    logging.getLogger("rostersync").setLevel(logging.INFO)

__version__ = "0.1.0"
