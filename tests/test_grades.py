"""Grade levels from every provider map to one vocabulary."""

from __future__ import annotations

import pytest

from rostersync.grades import normalize_grade, unknown_grade_finding


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Kindergarten", "KG"),
        ("K", "KG"),
        ("kg", "KG"),
        ("9", "09"),
        ("09", "09"),
        ("12", "12"),
        ("13", "13"),
        ("PreKindergarten", "PK"),
        ("TransitionalKindergarten", "TK"),
        ("PostGraduate", "PS"),
        ("Ungraded", "UG"),
        ("Other", "Other"),
        (" 3 ", "03"),
    ],
)
def test_known_grade_is_normalised(given, expected):
    assert normalize_grade(given) == (expected, True)


@pytest.mark.parametrize("given", ["P1", "14", "0", "Grade Nine"])
def test_unknown_grade_is_kept_as_given(given):
    assert normalize_grade(given) == (given.strip(), False)


@pytest.mark.parametrize("given", [None, "", "  "])
def test_missing_grade_is_none(given):
    assert normalize_grade(given) == (None, True)


@pytest.mark.parametrize("grade", ["P1", "2011-04-17", "Ask Jane Doe"])
def test_unknown_grade_finding_never_quotes_the_grade(grade):
    finding = unknown_grade_finding("u-1", "Clever")

    assert grade not in finding.message
    assert finding.message == (
        "User u-1 has a grade outside the grade vocabulary, so it is kept as Clever "
        "sent it."
    )
