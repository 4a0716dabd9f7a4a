"""An operator's decision on a held plan: apply it, or archive nothing.

A held run keeps its plan in ``stored_plans``. Approving applies that plan under the
held run's id, in one transaction, only when the district's store version is still
the one the plan was made against. Otherwise the store changed since, so the plan
is rejected as stale and the operator runs the sync again. Rejecting, or letting the
approval time out, archives nothing. Either way the decision is recorded on the run
with who, when and why, and the stored plan, which contains roster values, is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, delete, select, update

from rostersync.errors import ConfigurationError
from rostersync.store.apply import apply_plan
from rostersync.store.districts import store_pull_state
from rostersync.store.models import District, StoredPlan, SyncRun
from rostersync.store.runs import MAX_MESSAGE, load_plan, storable_text, utc_now

Decision = Literal["approved", "rejected", "expired"]

HELD = "held"
# Final statuses of a held run once decided.
APPLIED = "completed"
REJECTED = "rejected"
STALE = "stale"

MAX_DECIDER = 128


@dataclass(frozen=True)
class DecisionOutcome:
    """The outcome of a decision: the held run's new status, counts and message."""

    run_id: str
    district_id: str
    decision: Decision
    status: str
    message: str
    counts: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "district_id": self.district_id,
            "decision": self.decision,
            "status": self.status,
            "message": self.message,
            "counts": self.counts,
        }


def decide_held_run(
    engine: Engine,
    run_id: str,
    *,
    decision: Decision,
    by: str,
    reason: str,
    now: datetime | None = None,
) -> DecisionOutcome:
    """Apply or drop the plan of held run ``run_id`` and record the decision.

    Raises ConfigurationError when the run does not exist, is not held, was
    decided already, or when ``by`` or ``reason`` is empty. A stale plan is no
    error: it is recorded, and the outcome's status is ``stale``.
    """
    by, reason = _required(by, "--by NAME"), _required(reason, "--reason TEXT")
    now = now or utc_now()
    with engine.begin() as connection:
        run = connection.execute(
            select(SyncRun).where(SyncRun.id == run_id).with_for_update()
        ).one_or_none()
        if run is None:
            raise ConfigurationError(
                f"Run {run_id!r} does not exist; `rostersync runs list --status held` "
                "lists the runs that wait for a decision."
            )
        if run.status != HELD or run.decision is not None:
            done = f" ({run.decision} by {run.decided_by})" if run.decision else ""
            raise ConfigurationError(
                f"Run {run_id} is {run.status}{done}, not held, so there is nothing "
                "to decide; `rostersync runs list --status held` lists the runs that "
                "wait for a decision."
            )
        plan = load_plan(connection, run_id)
        if plan is None:
            raise ConfigurationError(
                f"Run {run_id} is held but has no stored plan (a dry run stores "
                "none); run the sync again without --dry-run."
            )
        status, message, store_version = REJECTED, _rejected_message(decision), None
        counts = dict(run.counts or {})
        if decision == "approved":
            version = connection.execute(
                select(District.store_version).where(District.id == run.district_id)
            ).scalar_one()
            if version != plan.store_version:
                status = STALE
                message = (
                    f"The store of district {run.district_id} changed after run "
                    f"{run_id} was planned (store version {version}, plan made at "
                    f"{plan.store_version}), so the plan was not applied. Run the "
                    f"sync again: `rostersync sync {run.district_id}`."
                )
            else:
                apply_plan(connection, plan, run_id, now)
                # The store now matches the held pull, so an identical pull later
                # is unchanged, and any other pull is planned.
                store_pull_state(
                    connection,
                    run.district_id,
                    run.pull_fingerprint,
                    changed=True,
                    now=now,
                )
                status, store_version = APPLIED, plan.store_version + 1
                message = f"The plan of run {run_id} was applied."
        if status != APPLIED:
            counts = {}
        connection.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(
                reason=storable_text(
                    f"Held, then {decision} by {by}: {message}", MAX_MESSAGE
                ),
                status=status,
                decision=decision,
                decided_by=storable_text(by, MAX_DECIDER),
                decision_reason=storable_text(reason, MAX_MESSAGE),
                decided_at=now,
                counts=counts,
                store_version=store_version,
            )
        )
        connection.execute(delete(StoredPlan).where(StoredPlan.run_id == run_id))
        return DecisionOutcome(
            run_id=run_id,
            district_id=run.district_id,
            decision=decision,
            status=status,
            message=message,
            counts=counts,
        )


def _rejected_message(decision: Decision) -> str:
    if decision == "expired":
        return "Nobody decided before the approval timed out, so nothing was archived."
    return "The plan was rejected, so nothing was archived."


def _required(value: str, option: str) -> str:
    text = (value or "").strip()
    if not text:
        raise ConfigurationError(
            f"A decision on a held run needs who made it and why; pass {option}."
        )
    return text


def held_runs(engine: Engine, district_id: str | None = None) -> list[dict[str, Any]]:
    """Return the runs that wait for a decision, oldest first."""
    return list_runs(engine, district_id=district_id, status=HELD)


def list_runs(
    engine: Engine,
    *,
    district_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Return the latest runs, newest first, with counts and decisions."""
    query = select(SyncRun).order_by(SyncRun.started_at.desc()).limit(limit)
    if district_id:
        query = query.where(SyncRun.district_id == district_id)
    if status:
        query = query.where(SyncRun.status == status)
    with engine.connect() as connection:
        return [run_summary(row) for row in connection.execute(query).all()]


def load_run(engine: Engine, run_id: str) -> dict[str, Any]:
    """Return one run's summary; raise ConfigurationError when it does not exist."""
    with engine.connect() as connection:
        row = connection.execute(
            select(SyncRun).where(SyncRun.id == run_id)
        ).one_or_none()
    if row is None:
        raise ConfigurationError(
            f"Run {run_id!r} does not exist; `rostersync runs list` lists the runs."
        )
    return run_summary(row)


def run_summary(row: Any) -> dict[str, Any]:
    """Return the operator's view of a sync_runs row: ids, statuses and counts."""
    return {
        "run_id": row.id,
        "district_id": row.district_id,
        "flow_name": row.flow_name,
        "status": row.status,
        "reason": row.reason,
        "dry_run": row.dry_run,
        "counts": row.counts or {},
        "quarantined": row.quarantined,
        "decision": row.decision,
        "decided_by": row.decided_by,
        "decision_reason": row.decision_reason,
        "decided_at": _iso(row.decided_at),
        "undoes_run_id": row.undoes_run_id,
        "flow_run_id": row.flow_run_id,
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def expire_stale_plans(connection: Connection, district_id: str, now: datetime) -> int:
    """Drop the stored plans of held runs that can no longer apply; return how many.

    A plan applies only at the store version it was made against, and the version
    only grows. Once the store moved on, the plan cannot apply and only keeps
    roster values. Its run is recorded as stale.
    """
    current = connection.execute(
        select(District.store_version).where(District.id == district_id)
    ).scalar_one_or_none()
    if current is None:
        return 0
    stale = (
        select(SyncRun.id)
        .where(SyncRun.district_id == district_id)
        .where(SyncRun.status == HELD)
        .where(SyncRun.store_version != current)
    )
    run_ids = list(connection.execute(stale).scalars())
    if not run_ids:
        return 0
    connection.execute(
        update(SyncRun)
        .where(SyncRun.id.in_(run_ids))
        .values(
            status=STALE,
            decision="expired",
            decided_by="purge-archived-users",
            decision_reason="The store changed after the plan was made, so it could "
            "no longer apply.",
            decided_at=now,
        )
    )
    connection.execute(delete(StoredPlan).where(StoredPlan.run_id.in_(run_ids)))
    return len(run_ids)
