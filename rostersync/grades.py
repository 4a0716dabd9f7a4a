"""Grade levels normalised to one vocabulary across providers."""

from __future__ import annotations

import re

from rostersync.roster import Finding

GRADES = (
    "PK", "TK", "KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10",
    "11", "12", "13", "PS", "UG", "Other",
)  # fmt: skip

_ALIASES = {
    "pk": "PK",
    "prek": "PK",
    "prekindergarten": "PK",
    "pre-k": "PK",
    "pre-kindergarten": "PK",
    "tk": "TK",
    "transitionalkindergarten": "TK",
    "kg": "KG",
    "k": "KG",
    "kindergarten": "KG",
    "ps": "PS",
    "postgraduate": "PS",
    "postsecondary": "PS",
    "ug": "UG",
    "ungraded": "UG",
    "other": "Other",
}
_NUMBER = re.compile(r"^(?:grade\s*)?0*(\d{1,2})(?:st|nd|rd|th)?$")


def normalize_grade(value: str | None) -> tuple[str | None, bool]:
    """Map a provider's grade to the vocabulary and report whether it was recognised.

    Returns ``(grade, known)``. An unknown grade comes back unchanged with
    ``known=False`` so the caller can report it; a missing grade is ``(None, True)``.
    """
    if value is None:
        return None, True
    text = value.strip()
    if not text:
        return None, True
    key = text.lower().replace(" ", "").replace("_", "")
    if key in _ALIASES:
        return _ALIASES[key], True
    match = _NUMBER.match(text.lower())
    if match:
        number = int(match.group(1))
        if 1 <= number <= 13:
            return f"{number:02d}", True
    return text, False


def unknown_grade_finding(provider_id: str, source: str) -> Finding:
    """Return the warning for a grade outside the vocabulary, kept as sent.

    The grade itself is not quoted, because a provider can put any text in the cell,
    a name or a birth date included.
    """
    return Finding(
        entity="users",
        check="unknown_grade",
        level="warning",
        message=(
            f"User {provider_id} has a grade outside the grade vocabulary, so it is "
            f"kept as {source} sent it."
        ),
        provider_id=provider_id,
    )
