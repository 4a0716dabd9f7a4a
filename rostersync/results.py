"""The summary a sync run returns, prints with --json and publishes as artifacts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from rostersync.planning import ACTIONS
from rostersync.roster import ENTITIES

SyncStatus = Literal["completed", "held", "failed", "skipped", "suspended", "rejected"]

# Exit codes of `rostersync sync`, one per final status.
EXIT_CODES: dict[str, int] = {
    "completed": 0,
    "failed": 1,
    "held": 3,
    "skipped": 4,
    "suspended": 5,
    "rejected": 6,
}


def empty_counts() -> dict[str, dict[str, int]]:
    """Return zero counts for every reported entity."""
    return {entity: dict.fromkeys(ACTIONS, 0) for entity in ENTITIES}


class SyncResult(BaseModel):
    """The outcome of one sync run, with counts per entity and no student data."""

    district_id: str
    status: SyncStatus
    reason: str | None = None
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    quarantined: int = 0
    flow_run_id: str | None = None
    run_id: str | None = None
    dry_run: bool = False
    # The first findings in full, and the number of findings per level and check.
    findings: list[dict[str, Any]] = Field(default_factory=list)
    finding_totals: list[dict[str, Any]] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    guard: dict[str, Any] = Field(default_factory=dict)
    # How the roster was pulled (rostersync.roster.PullInfo), in counts only.
    pull: dict[str, Any] = Field(default_factory=dict)
    # When a full pull last differed from the one before; set when this one did not.
    unchanged_since: str | None = None
    # An operator's decision on a held plan: decision, by, reason, status.
    decision: dict[str, Any] | None = None
    # The sharing rule set the run used ("name@version") and the provider school
    # ids it was limited to, if any.
    rule_set: str | None = None
    limited_to: list[str] = Field(default_factory=list)
    # Provider school ids of share requests this run fulfilled, and of those still
    # pending.
    share_requests: dict[str, list[str]] = Field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Return the public JSON shape of the result."""
        return {
            "district_id": self.district_id,
            "status": self.status,
            "reason": self.reason,
            "counts": self.counts,
            "quarantined": self.quarantined,
            "pull": self.pull,
            "unchanged_since": self.unchanged_since,
            "decision": self.decision,
            "rule_set": self.rule_set,
            "limited_to": self.limited_to,
            "share_requests": self.share_requests,
            "run_id": self.run_id,
            "flow_run_id": self.flow_run_id,
        }
