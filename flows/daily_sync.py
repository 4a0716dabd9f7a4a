"""The daily sync: pull a district's shared roster, check it, plan, guard, apply."""

from __future__ import annotations

import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import Field

from rostersync.errors import (
    BlockingCheckError,
    DistrictBusyError,
    RostersyncError,
)
from rostersync.fingerprint import roster_fingerprint
from rostersync.guard import data_manager_missing
from rostersync.report import total_findings
from rostersync.results import SyncResult, empty_counts
from rostersync.roster import Finding, cursor_to_store, shown_id
from rostersync.rules import RuleSet
from rostersync.store.districts import (
    IntegrationConfig,
    contract_state,
    local_date,
)
from rostersync.store.runs import MAX_FINDINGS_ON_RUN
from tasks.alert import send_run_alert
from tasks.approval import approval_server_available, wait_for_decision
from tasks.concurrency import district_sync_slot
from tasks.extract import extract_roster
from tasks.plan import guard_removals, plan_roster_changes
from tasks.report import publish_report
from tasks.rules import apply_rules, check_share_requests, choose_rule_set
from tasks.store import (
    apply_changes,
    hold_changes,
    load_district_integration,
    read_pull_state,
    read_store_snapshot,
    record_result,
    start_sync_run,
    suspend_district,
    warn_contract_ending,
)
from tasks.validate import validate_roster

FLOW_NAME = "daily-sync"
DEFAULT_APPROVAL_HOURS = 24.0


@flow(name=FLOW_NAME, log_prints=False, validate_parameters=True, persist_result=False)
def daily_sync(
    district_id: str,
    dry_run: bool = False,
    full_pull: bool = False,
    expected_removals: list[str] | None = None,
    wait_for_approval: bool = True,
    approval_timeout_hours: Annotated[float, Field(gt=0, le=24 * 14)] = (
        DEFAULT_APPROVAL_HOURS
    ),
    limit_to_schools: list[str] | None = None,
    rule_set: str | None = None,
) -> State:
    """Sync one district's roster into the store; return its SyncResult as state.

    ``full_pull`` reads everything from a provider even when the integration could
    pull only the changes since the last sync. ``expected_removals`` lists the
    provider user ids a flow expects to leave (the end of summer school), whose
    removal does not count against the mass-removal threshold. When
    ``wait_for_approval`` is set and a Prefect server runs the flow, a held plan
    waits up to ``approval_timeout_hours`` for an operator's decision in the
    Prefect UI. A plan that gets no decision in that time counts as rejected.
    ``limit_to_schools`` (provider school ids) changes only those schools' records,
    from a full pull. ``rule_set`` names the sharing rule set to sync under, by
    default the one in force on the district's local date.
    """
    result = SyncResult(
        district_id=district_id,
        status="failed",
        dry_run=dry_run,
        flow_run_id=_flow_run_id(),
    )
    findings: list[Finding] = []
    options = _Options(
        full_pull=full_pull,
        expected_removals=frozenset(expected_removals or ()),
        wait=wait_for_approval and not dry_run,
        timeout_hours=approval_timeout_hours,
        limit_to=sorted({pid.strip() for pid in limit_to_schools or () if pid.strip()}),
        rule_set=rule_set,
    )
    run_id = str(uuid.uuid4())
    try:
        integration = load_district_integration(district_id)
        # The run's row is written under the district's lock, so a running row
        # whose lock is gone belongs to a run that stopped.
        with district_sync_slot(district_id, run_id, result.flow_run_id):
            result.run_id = start_sync_run(
                district_id, FLOW_NAME, result.flow_run_id, dry_run, run_id
            )
            try:
                _run_steps(result, integration, findings, options)
            except Exception as exc:  # noqa: BLE001 - recorded before the lock goes
                _record_failure(result, findings, exc, locked=True)
        # A held plan waits for its decision without the district's lock, so the
        # next day's sync is not kept out by an operator who has not decided.
        if options.wait_for_decision:
            publish_report(result)
            send_run_alert(result, FLOW_NAME)
            options.alerted = True
            wait_for_decision(result, options.timeout_hours)
    except DistrictBusyError as exc:
        _skip_busy(result, findings, str(exc))
    except Exception as exc:  # noqa: BLE001 - a crash must not leave the run open
        _record_failure(result, findings, exc, locked=False)

    publish_report(result)
    # A held run that waited for a decision alerted before the wait, and a dry
    # run is an operator's own preview.
    if not dry_run and not options.alerted:
        send_run_alert(result, FLOW_NAME)
    if result.status == "failed":
        return Failed(message=result.reason, data=result)
    return Completed(message=result.status, data=result)


class _Options:
    """The run's parameters that the steps read, and whether it alerted already."""

    def __init__(
        self,
        *,
        full_pull: bool,
        expected_removals: frozenset[str],
        wait: bool,
        timeout_hours: float,
        limit_to: list[str],
        rule_set: str | None,
    ) -> None:
        self.limit_to = limit_to
        self.rule_set = rule_set
        self.full_pull = full_pull
        self.expected_removals = expected_removals
        self.wait = wait
        self.timeout_hours = timeout_hours
        self.alerted = False
        self.wait_for_decision = False


def _run_steps(
    result: SyncResult,
    integration: IntegrationConfig,
    findings: list[Finding],
    options: _Options,
) -> None:
    timings = result.timings
    district_id = result.district_id

    if not _may_sync(result, integration, findings):
        return
    rules = choose_rule_set(integration, options.rule_set)
    result.rule_set, result.limited_to = rules.label, options.limit_to
    today = local_date(integration, datetime.now(UTC))
    if rules.is_overdue(today):
        findings.append(
            Finding(
                entity="district",
                check="reversion_overdue",
                level="warning",
                message=(
                    f"Sharing rule set {rules.label} ended on {rules.valid_to} and "
                    "stays in force until it is reverted: run `rostersync rules "
                    f"revert {district_id}` (the revert-sharing-rules flow)."
                ),
            )
        )
    with _timed(timings, "extract"):
        roster = extract_roster(integration, _full_pull(integration, rules, options))
        result.pull = roster.pull.as_dict()
        store = read_store_snapshot(district_id)
        fulfilled, pending = check_share_requests(district_id, roster, result.dry_run)
        findings.extend(pending)
        result.share_requests = {
            "fulfilled": fulfilled,
            "pending": [f.provider_id or "" for f in pending],
        }
        prepared = apply_rules(roster, integration, store, rules, options.limit_to)
        roster = prepared.roster
        findings.extend(prepared.findings)
        integration = replace(
            integration, shared_school_ids=prepared.rules.shared_school_ids
        )
    with _timed(timings, "validate"):
        report = validate_roster(roster, integration, store)
        findings.extend(report.findings)
        result.quarantined = report.quarantined_count
    if report.blocking:
        raise BlockingCheckError(_blocking_reason(report.blocking))
    # After the blocking checks: a broken pull fails the run, it does not suspend.
    if data_manager_missing(roster, integration.data_manager_id, store.users):
        _suspend(result, integration, findings)
        return
    fingerprint = roster_fingerprint(roster, integration.shared_school_ids)
    pull_state = read_pull_state(district_id)
    if fingerprint is not None and fingerprint == pull_state.fingerprint:
        since = pull_state.unchanged_since
        shown = local_date(integration, since).isoformat() if since else "unknown"
        result.status, result.unchanged_since = "completed", shown
        result.reason = (
            f"Roster unchanged since {shown}: the pull is identical to the last "
            "applied one, so nothing was planned and nobody lost access."
        )
        result.counts = store.unchanged_counts()
        _close(result, findings)
        cursor = None if result.dry_run else cursor_to_store(roster, result.quarantined)
        applied_rules = None if result.dry_run else rules.label
        record_result(result, findings, cursor, applied_rules)
        return
    with _timed(timings, "plan"):
        plan = plan_roster_changes(district_id, report.clean, store, report.quarantined)
        result.counts = plan.counts()
    with _timed(timings, "guard"):
        verdict = guard_removals(plan, integration, store, options.expected_removals)
        result.guard = {
            "held": verdict.held,
            "archived_users": verdict.archived_users,
            "counted_users": verdict.counted_users,
            "threshold": verdict.threshold,
            "by_role_school": verdict.by_role_school,
        }

    with _timed(timings, "apply"):
        if verdict.held and result.dry_run:
            # A dry run stores no plan, so there is nothing for an operator to approve.
            result.status, result.reason = "held", f"Dry run: {verdict.reason}"
            _close(result, findings)
            record_result(result, findings)
        elif verdict.held:
            result.status, result.reason = "held", verdict.reason
            _close(result, findings)
            hold_changes(plan, result, findings, verdict, fingerprint)
            # Operators see the held plan and are alerted before the wait.
            options.wait_for_decision = options.wait and approval_server_available()
        elif result.dry_run:
            result.status, result.reason = "completed", "Dry run: nothing written."
            _close(result, findings)
            record_result(result, findings)
        else:
            result.status = "completed"
            if roster.is_delta and plan.is_empty and pull_state.unchanged_since:
                shown = local_date(integration, pull_state.unchanged_since)
                result.unchanged_since = shown.isoformat()
                result.reason = f"Roster unchanged since {shown}: nothing to apply."
            _close(result, findings)
            cursor = cursor_to_store(roster, report.quarantined_count)
            applied_rules = None if options.limit_to else rules.label
            apply_changes(plan, result, findings, cursor, fingerprint, applied_rules)
    get_run_logger().info("district %s: %s", district_id, result.status)


def _full_pull(
    integration: IntegrationConfig, rules: RuleSet, options: _Options
) -> bool:
    """Whether the run must pull in full although the integration is incremental.

    A limited run and a set with a summer roster file need every record, and so
    does a run under another set than the last applied pull's: the records that
    left the set send no change event.
    """
    if options.full_pull or options.limit_to or rules.extra_source:
        return True
    applied = integration.applied_rule_set
    return applied is not None and applied != rules.label


def _may_sync(
    result: SyncResult, integration: IntegrationConfig, findings: list[Finding]
) -> bool:
    """Return False, with the run recorded, when the district may not sync now.

    A district without a current contract is skipped and a suspended integration
    ends as suspended. A contract that ends within 30 days adds a warning.
    """
    now = datetime.now(UTC)
    contract = contract_state(integration, local_date(integration, now))
    if not contract.current:
        result.status, result.reason = "skipped", contract.reason
        result.counts = empty_counts()
        _close(result, findings)
        record_result(result, findings)
        return False
    if integration.status == "suspended":
        result.status = "suspended"
        result.reason = (
            f"The integration of district {integration.district_id} is suspended: "
            f"{integration.status_reason or 'no reason recorded'} Nothing was "
            "pulled or written. Name a data manager present in the shared data with "
            f"`rostersync district set-data-manager {integration.district_id} "
            "USER_ID`."
        )
        result.counts = empty_counts()
        _close(result, findings)
        record_result(result, findings)
        return False
    if contract.ending_soon and integration.contract_end is not None:
        get_run_logger().warning(
            "district %s: the contract ends on %s, in %d days",
            integration.district_id,
            integration.contract_end,
            contract.days_left,
        )
        findings.append(
            Finding(
                entity="district",
                check="contract_ending",
                level="warning",
                message=(
                    f"The contract of district {integration.district_id} ends on "
                    f"{integration.contract_end}, in {contract.days_left} days."
                ),
            )
        )
        if not result.dry_run:
            warn_contract_ending(result, integration.contract_end, contract.days_left)
    return True


def _suspend(
    result: SyncResult, integration: IntegrationConfig, findings: list[Finding]
) -> None:
    """Suspend the integration because its data manager left the shared data."""
    reason = (
        f"Data manager {shown_id(integration.data_manager_id or '')} is no longer "
        "in the shared data of the provider."
    )
    result.status = "suspended"
    result.counts = empty_counts()
    if result.dry_run:
        result.reason = f"Dry run: the integration would be suspended. {reason}"
    else:
        result.reason = (
            f"{reason} The integration is suspended and nothing was written; every "
            "sync ends at once until the district names a data manager who is in "
            "the shared data: `rostersync district set-data-manager "
            f"{integration.district_id} USER_ID`."
        )
    _close(result, findings)
    if result.dry_run:
        record_result(result, findings)
    else:
        suspend_district(result, findings, reason)


def _record_failure(
    result: SyncResult, findings: list[Finding], exc: Exception, *, locked: bool
) -> None:
    """Close the run as failed with the error's message, or a crash's class only.

    ``locked`` is True while the run holds the district's lock (see _fail).
    """
    if isinstance(exc, RostersyncError):
        if exc.pull is not None:
            result.pull = exc.pull
        _fail(result, findings, str(exc), locked=locked)
        return
    # The message of an unexpected error may quote record values, so the log gets
    # the class and the stack without it.
    get_run_logger().error(
        "district %s: the sync crashed with %s at\n%s",
        result.district_id,
        type(exc).__name__,
        "".join(traceback.format_tb(exc.__traceback__)),
    )
    _fail(
        result,
        findings,
        f"The sync crashed with {type(exc).__name__}; nothing was written. The "
        "flow run's logs have the details.",
        locked=locked,
    )


def _skip_busy(result: SyncResult, findings: list[Finding], reason: str) -> None:
    """End a run that found another sync of its district in progress.

    It writes no row in the store: the sync that holds the district is the day's
    sync, and a run kept out by a stopped run's lease leaves the district due for
    the next dispatch.
    """
    get_run_logger().warning("district %s: %s", result.district_id, reason)
    result.status, result.reason = "skipped", reason
    result.counts = empty_counts()
    _close(result, findings)


def _fail(
    result: SyncResult, findings: list[Finding], reason: str, *, locked: bool = True
) -> None:
    """Close the run as failed. A failure to record it is logged, not raised.

    With ``locked``, the run records its failure only if it still holds the
    district's lock; a run that lost it leaves its row to the dispatcher, which
    closes it as stopped.
    """
    result.status = "failed"
    result.reason = reason
    # Nothing was applied, whatever the plan contained.
    result.counts = empty_counts()
    _close(result, findings)
    if result.run_id is None:
        return
    try:
        record_result(result, findings, locked=locked)
    except RostersyncError as exc:
        get_run_logger().error(
            "district %s: run %s could not be recorded as failed: %s",
            result.district_id,
            result.run_id,
            exc,
        )


def _blocking_reason(blocking: list[Finding]) -> str:
    first = blocking[0]
    more = f" ({len(blocking) - 1} more blocking findings)" if len(blocking) > 1 else ""
    return f"Blocking data check failed, nothing was written: {first.message}{more}"


def _close(result: SyncResult, findings: list[Finding]) -> None:
    result.findings = [f.as_dict() for f in findings[:MAX_FINDINGS_ON_RUN]]
    result.finding_totals = total_findings(findings)


@contextmanager
def _timed(timings: dict[str, float], step: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = round(time.perf_counter() - started, 3)


def _flow_run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None
