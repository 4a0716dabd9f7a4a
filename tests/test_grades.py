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


def test_unknown_grade_finding_quotes_a_code():
    finding = unknown_grade_finding("u-1", "P1", "Clever")

    assert (
        finding.message
        == "Grade 'P1' is not a known grade level, so it is kept as Clever sent it."
    )
    assert finding.provider_id == "u-1"


def test_unknown_grade_finding_hides_free_text():
    finding = unknown_grade_finding("u-1", "Ask Jane Doe", "the file")

    assert "Jane" not in finding.message
