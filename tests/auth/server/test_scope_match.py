"""Granted scopes = requested ∩ registered ∩ what the subject may hold, in SMART v1 and v2 syntax."""

from __future__ import annotations

from fhir_server.auth.scope_match import BACKEND_CONTEXTS, USER_CONTEXTS, allowed_scopes

PRO = USER_CONTEXTS["practitioner"]
PATIENT = USER_CONTEXTS["patient"]


def test_covered_scopes_are_kept_as_written() -> None:
    registered = "patient/*.cruds user/*.rs launch/patient openid fhirUser offline_access"
    requested = "patient/Observation.read patient/*.rs user/Patient.s launch/patient openid offline_access"
    assert allowed_scopes(requested, registered, PRO) == requested.split()


def test_query_kept_when_registered_scope_covers_the_type() -> None:
    wanted = "patient/DocumentReference.rs?type=http://loinc.org|11488-4"
    assert allowed_scopes(wanted, "patient/*.rs", PATIENT) == [wanted]
    assert allowed_scopes(wanted, "patient/DocumentReference.rs", PATIENT) == [wanted]
    # Registered narrower by query: only that query can be granted.
    narrow = "patient/DocumentReference.rs?type=http://loinc.org|18748-4"
    assert allowed_scopes(wanted, narrow, PATIENT) == []
    assert allowed_scopes("patient/DocumentReference.rs", narrow, PATIENT) == [narrow]


def test_overlap_is_granted_when_not_covered() -> None:
    assert allowed_scopes("patient/*.cruds", "patient/Observation.rs", PATIENT) == ["patient/Observation.rs"]
    assert allowed_scopes("patient/Observation.cruds", "patient/*.rs", PATIENT) == ["patient/Observation.rs"]
    # v1 stays v1 when the permissions have a v1 name.
    assert allowed_scopes("patient/*.read", "patient/Patient.rs", PATIENT) == ["patient/Patient.read"]
    assert allowed_scopes("patient/*.*", "patient/Patient.rs", PATIENT) == ["patient/Patient.read"]
    assert allowed_scopes("user/*.write", "user/Patient.cu", PRO) == ["user/Patient.cu"]


def test_contexts_by_subject() -> None:
    registered = "patient/*.rs user/*.rs system/*.rs openid"
    assert allowed_scopes("patient/*.rs user/*.rs system/*.rs", registered, PATIENT) == ["patient/*.rs"]
    assert allowed_scopes("patient/*.rs user/*.rs system/*.rs", registered, PRO) == [
        "patient/*.rs",
        "user/*.rs",
    ]
    # A backend client: clinical system/ scopes only, not even openid.
    assert allowed_scopes("system/*.rs openid patient/*.rs", registered, BACKEND_CONTEXTS) == ["system/*.rs"]


def test_unknown_and_malformed_scopes_are_dropped() -> None:
    registered = "patient/*.cruds openid"
    assert allowed_scopes(
        "patient/*.xyz patient/Observation.sr email openid openid", registered, PATIENT
    ) == ["openid"]
    assert allowed_scopes("", registered, PATIENT) == []
