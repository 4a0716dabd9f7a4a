"""Local emulators of Clever's and ClassLink's roster APIs, with fault injection."""

from rostersync.emulators.clever import CleverEmulator
from rostersync.emulators.command import add_emulate_command
from rostersync.emulators.faults import Fault, FaultPlan, parse_fault
from rostersync.emulators.oneroster import OneRosterEmulator
from rostersync.emulators.server import RequestRecord

__all__ = [
    "CleverEmulator",
    "Fault",
    "FaultPlan",
    "OneRosterEmulator",
    "RequestRecord",
    "add_emulate_command",
    "parse_fault",
]
