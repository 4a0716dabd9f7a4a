"""Errors raised by rostersync.

RostersyncError
├── ConfigurationError     a district, integration or option is missing or invalid
├── RosterSourceError      a roster source cannot be read or trusted
│   ├── RosterFileError    one file of the source, with its line number
│   └── ProviderError      a provider's API failed or sent an untrustworthy response
│       └── ProviderAuthError   the provider rejected the credentials
├── BlockingCheckError     a blocking data check failed, so nothing was written
├── StaleStoreError        the store changed after a plan was made
├── StoreError             the store rejected a statement or cannot be reached
├── PrefectUnavailableError  the Prefect server could not be started or reached
└── UnexpectedError        any other exception of a task, without its message

``transient`` says whether trying the same step again may succeed; the flows retry
only transient errors and errors from outside this project (network, database).

Every message names the value that failed and what to do next, and never
contains student data: records are named by provider id only.
"""

from pathlib import Path


class RostersyncError(Exception):
    """Base class of every error this project raises on purpose.

    ``pull`` contains the figures of a provider pull that failed part way (requests,
    retries, pages), for the run's report.
    """

    transient = False
    pull: dict | None = None


class ConfigurationError(RostersyncError):
    """A district, an integration or an option is missing or invalid."""


class PrefectUnavailableError(RostersyncError):
    """The Prefect server that runs the flows could not be started or reached."""


class RosterSourceError(RostersyncError):
    """A roster source cannot be read, or its content cannot be trusted."""


class RosterFileError(RosterSourceError):
    """One file of a roster source cannot be trusted.

    The message names the file, the line (when there is one) and the fix.
    """

    def __init__(
        self, path: Path | str, problem: str, fix: str, line: int | None = None
    ) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        self.fix = fix
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem} {fix}")


class ProviderError(RosterSourceError):
    """A provider's API failed, or sent a response the pull cannot trust.

    The client has already retried what may succeed on a second try, so the error
    is not transient: another try of the whole pull would repeat the same requests.
    The message names the request by method and path, never a credential.
    ``status`` is the HTTP status that ended the request, when there was one.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self):
        return (_rebuild_provider_error, (type(self), str(self), self.status))


class ProviderAuthError(ProviderError):
    """The provider rejected the credentials (HTTP 401 or 403)."""


def _rebuild_provider_error(
    kind: type[ProviderError], message: str, status: int | None
) -> ProviderError:
    return kind(message, status=status)


class BlockingCheckError(RostersyncError):
    """A blocking data check failed; the run stops before any write."""


class DistrictBusyError(RostersyncError):
    """Another sync of the same district holds its lock; this one changes nothing."""


class StaleStoreError(RostersyncError):
    """The store changed after the plan was made; the plan no longer applies."""


class StoreError(RostersyncError):
    """The store rejected a statement or cannot be reached.

    The message keeps only the first line of the database's own message: the lines
    after it (PostgreSQL's DETAIL) and the statement's parameters can hold record
    values.
    """

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient

    def __reduce__(self):
        return (_rebuild_store_error, (str(self), self.transient))


def _rebuild_store_error(message: str, transient: bool) -> StoreError:
    return StoreError(message, transient=transient)


class UnexpectedError(RostersyncError):
    """An exception from outside the project, stripped of its message.

    The message of a pandas or library error can quote record values, so only the
    exception's class and the step are kept. It may be transient, so it is retried.
    """

    transient = True
