"""Tests of fault specs and of the thread-safe plan that hands faults out."""

from __future__ import annotations

import threading

import pytest

from rostersync.emulators.faults import FAULT_KINDS, Fault, FaultPlan, parse_fault


def test_parse_fault_reads_every_option():
    fault = parse_fault("server-error:path=users,page=2,times=3,status=502")

    assert fault == Fault("server-error", path="users", page=2, times=3, status=502)


def test_parse_fault_reads_rate_limit_settings():
    fault = parse_fault("rate-limit:times=3,seconds=2,header=reset")

    assert fault == Fault("rate-limit", times=3, seconds=2.0, header="reset")


def test_parse_fault_reads_fractional_seconds():
    fault = parse_fault("slow:path=sections,seconds=1.5")

    assert fault.seconds == 1.5


def test_parse_fault_without_options_affects_one_response():
    fault = parse_fault("drop")

    assert fault == Fault("drop", times=1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("explode", "Unknown fault kind 'explode'", id="kind"),
        pytest.param("drop:size=2", "Unknown fault option 'size'", id="option"),
        pytest.param("drop:page", "write OPTION=VALUE", id="no-value"),
        pytest.param("drop:page=1,page=2", "given twice", id="twice"),
        pytest.param("drop:page=two", "page must be a whole number", id="page-text"),
        pytest.param("drop:page=0", "page must be 1 or more", id="page-zero"),
        pytest.param("drop:times=-1", "times must be 0", id="times-negative"),
        pytest.param("server-error:status=404", "500, 502, 503", id="status"),
        pytest.param("drop:status=500", "status applies only", id="status-kind"),
        pytest.param("drop:seconds=1", "seconds applies only", id="seconds-kind"),
        pytest.param("slow", "needs seconds", id="slow-seconds"),
        pytest.param("slow:seconds=-1", "finite number of 0 or more", id="negative"),
        pytest.param("slow:seconds=nan", "finite number of 0 or more", id="nan"),
        pytest.param("slow:seconds=soon", "number of seconds", id="seconds-text"),
        pytest.param("rate-limit:header=x", "reset, retry-after, both", id="header"),
        pytest.param("drop:header=reset", "header applies only", id="header-kind"),
    ],
)
def test_parse_fault_rejects_invalid_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_fault(spec)


def test_unknown_kind_message_lists_accepted_kinds():
    with pytest.raises(ValueError) as raised:
        parse_fault("explode")

    for kind in FAULT_KINDS:
        assert kind in str(raised.value)


def test_server_error_status_defaults_to_503():
    assert Fault("server-error").response_status == 503


def test_rate_limit_defaults_to_both_headers():
    assert Fault("rate-limit").rate_limit_header == "both"


def test_fault_without_path_or_page_matches_anything():
    fault = Fault("drop")

    assert fault.matches("users", 3)
    assert fault.matches("events", None)


def test_fault_matches_only_its_path_and_page():
    fault = Fault("drop", path="users", page=2)

    assert fault.matches("users", 2)
    assert not fault.matches("users", 1)
    assert not fault.matches("sections", 2)
    assert not fault.matches("users", None)


def test_plan_consumes_fault_after_times():
    plan = FaultPlan()
    plan.add(Fault("drop", times=2))

    taken = [plan.take(["drop"], "users", 1) for _ in range(3)]

    assert taken[:2] == [Fault("drop", times=2)] * 2
    assert taken[2] is None
    assert plan.pending() == []


def test_plan_times_zero_never_runs_out():
    plan = FaultPlan()
    plan.add(Fault("drop", times=0))

    taken = [plan.take(["drop"], "users", 1) for _ in range(50)]

    assert all(fault is not None for fault in taken)


def test_plan_hands_out_only_requested_kinds():
    plan = FaultPlan()
    plan.add(Fault("drop"))

    assert plan.take(["truncate"], "users", 1) is None
    assert plan.pending() == [Fault("drop")]


def test_plan_first_added_fault_wins():
    plan = FaultPlan()
    first = plan.add(Fault("server-error", status=500))
    plan.add(Fault("server-error", status=502))

    assert plan.take(["server-error"], "users", 1) == first


def test_plan_skips_faults_of_other_pages():
    plan = FaultPlan()
    plan.add(Fault("drop", page=2))

    assert plan.take(["drop"], "users", 1) is None
    assert plan.take(["drop"], "users", 2) == Fault("drop", page=2)


def test_plan_clear_removes_every_fault():
    plan = FaultPlan()
    plan.add(Fault("drop", times=0))
    plan.add(Fault("truncate"))

    plan.clear()

    assert plan.pending() == []


def test_plan_rejects_unsupported_kind():
    plan = FaultPlan(kinds=["drop"])

    with pytest.raises(ValueError, match="does not support the fault kind 'move'"):
        plan.add(Fault("move"))


def test_plan_rejects_unknown_path():
    plan = FaultPlan(paths=["users", "schools"])

    with pytest.raises(ValueError, match="Unknown fault path 'students'"):
        plan.add(Fault("drop", path="students"))


def test_plan_take_is_thread_safe():
    times = 300
    plan = FaultPlan()
    plan.add(Fault("drop", times=times))
    taken: list[Fault] = []
    lock = threading.Lock()

    def take_many() -> None:
        for _ in range(100):
            fault = plan.take(["drop"], "users", 1)
            if fault is not None:
                with lock:
                    taken.append(fault)

    threads = [threading.Thread(target=take_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(taken) == times
