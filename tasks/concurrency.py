"""One daily sync per district at a time: a Prefect concurrency limit and a store lock.

The Prefect global concurrency limit ``rostersync-district-<id>`` (one slot) makes
a second sync of the same district wait in Prefect, where operators see it. Its
slot is leased: the lease of a run whose process died expires after
``ROSTERSYNC_SYNC_LEASE_SECONDS``. The lock row in the store's ``district_locks``
still guards the district when Prefect's lease does not, such as a lease lost
while the API was unreachable. The sync renews it while it works, and every write
transaction of the sync checks it, so two runs never write one district at once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from uuid import UUID

import httpx
from prefect import task
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.exceptions import ObjectAlreadyExists

from rostersync.errors import DistrictBusyError, RostersyncError
from rostersync.settings import get_settings
from rostersync.store.database import get_engine, store_errors
from rostersync.store.locks import (
    acquire_sync_lock,
    release_sync_lock,
    renew_sync_lock,
)
from tasks.options import IO_TASK_OPTIONS

logger = logging.getLogger("rostersync.tasks")

DISTRICT_LIMIT_PREFIX = "rostersync-district-"
# Prefect names may not hold / % & > <; other ids are named by their hash.
_PLAIN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def district_limit_name(district_id: str) -> str:
    """Return the name of the district's Prefect concurrency limit.

    Ids of letters, digits, dot, dash and underscore keep their name; any other
    id gets ``~`` and its SHA-256, which no plain id can equal.
    """
    if _PLAIN_ID.fullmatch(district_id):
        return DISTRICT_LIMIT_PREFIX + district_id
    digest = hashlib.sha256(district_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{DISTRICT_LIMIT_PREFIX}~{digest[:40]}"


@task(name="create-district-limit", **IO_TASK_OPTIONS)
def ensure_district_limit(name: str) -> None:
    """Create the district's one-slot limit if it does not exist yet."""
    # ObjectAlreadyExists: another sync of the district created it first.
    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):
        client.upsert_global_concurrency_limit_by_name(name, 1)


class _Renewal(threading.Thread):
    """Renews the store lock and the Prefect lease every third of the lease."""

    def __init__(
        self, district_id: str, run_id: str, lease: float, lease_id: UUID | None
    ) -> None:
        super().__init__(name=f"lock-renewal-{run_id}", daemon=True)
        self.district_id = district_id
        self.run_id = run_id
        self.lease = lease
        self.lease_id = lease_id
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.lease / 3):
            self._renew_prefect_lease()
            try:
                with store_errors():
                    held = renew_sync_lock(
                        get_engine(), self.district_id, self.run_id, self.lease
                    )
            except RostersyncError as exc:
                logger.warning(
                    "district %s: the sync lock could not be renewed: %s",
                    self.district_id,
                    exc,
                )
                continue
            if not held:
                logger.error(
                    "district %s: run %s lost its sync lock; it will write nothing",
                    self.district_id,
                    self.run_id,
                )
                return

    def _renew_prefect_lease(self) -> None:
        if self.lease_id is None:
            return
        try:
            with get_client(sync_client=True) as client:
                client.renew_concurrency_lease(self.lease_id, self.lease)
        except Exception as exc:  # noqa: BLE001 - the store lock still holds
            logger.warning(
                "district %s: the Prefect concurrency lease could not be renewed "
                "(%s); the store lock still keeps other syncs out",
                self.district_id,
                type(exc).__name__,
            )


def _take_slot(name: str, lease: float, wait: float, holder) -> UUID | None:
    """Take the limit's slot with a lease; return the lease id, or None if busy.

    Tries again after the server's Retry-After until ``wait`` seconds have passed.
    """
    deadline = time.monotonic() + wait
    with get_client(sync_client=True) as client:
        while True:
            try:
                response = client.increment_concurrency_slots_with_lease(
                    names=[name],
                    slots=1,
                    mode="concurrency",
                    lease_duration=lease,
                    holder=holder,
                )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 423:
                    raise
                retry = float(exc.response.headers.get("Retry-After") or 1)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                time.sleep(min(max(retry, 0.1), left))
                continue
            return UUID(response.json()["lease_id"])


def _release_slot(district_id: str, lease_id: UUID) -> None:
    try:
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots_with_lease(lease_id)
    except Exception as exc:  # noqa: BLE001 - the lease expires on its own
        logger.warning(
            "district %s: the Prefect concurrency slot was not released (%s); its "
            "lease expires on its own",
            district_id,
            type(exc).__name__,
        )


@contextmanager
def district_sync_slot(
    district_id: str, run_id: str, flow_run_id: str | None
) -> Iterator[None]:
    """Hold the district's Prefect slot and store lock for the body.

    Raises DistrictBusyError when another sync of the district holds the slot for
    longer than ``ROSTERSYNC_DISTRICT_WAIT_SECONDS``, or holds the store lock.
    The slot is taken and released with direct API calls, so that the next sync
    of the district finds it free at once.
    """
    settings = get_settings()
    lease = settings.sync_lease_seconds
    name = district_limit_name(district_id)
    holder = (
        ConcurrencyLeaseHolder(type="flow_run", id=UUID(flow_run_id))
        if flow_run_id
        else None
    )
    lease_id = None
    if settings.prefect_district_limit:
        ensure_district_limit(name)
        lease_id = _take_slot(name, lease, settings.district_wait_seconds, holder)
    if settings.prefect_district_limit and lease_id is None:
        raise DistrictBusyError(
            f"Another sync of district {district_id} held the Prefect concurrency "
            f"limit {name} for {settings.district_wait_seconds:g} s; this run "
            "changed nothing. The Prefect UI's Concurrency page shows the holder."
        )
    try:
        with store_errors():
            busy = acquire_sync_lock(get_engine(), district_id, run_id, lease)
        if busy is not None:
            raise DistrictBusyError(
                f"Run {busy.run_id} holds the store lock of district {district_id} "
                f"until {busy.expires_at:%Y-%m-%d %H:%M:%S} UTC; this run changed "
                "nothing. A lock whose run stopped expires then, and the next "
                "dispatch syncs the district."
            )
        renewal = _Renewal(district_id, run_id, lease, lease_id)
        renewal.start()
        try:
            yield
        finally:
            renewal.stopped.set()
            renewal.join(timeout=5)
            try:
                with store_errors():
                    release_sync_lock(get_engine(), district_id, run_id)
            except RostersyncError as exc:
                logger.warning(
                    "district %s: the sync lock was not released (%s); it expires "
                    "in %g s",
                    district_id,
                    exc,
                    lease,
                )
    finally:
        if lease_id is not None:
            _release_slot(district_id, lease_id)
