"""The shape of what a FHIR export holds, checked before anything reads it.

JSON is parsed strictly (no NaN or Infinity, no number too large for a
float, no whole number of more than 30 digits, no nesting deeper than 64),
and each element the adapter reads must have its FHIR R4 JSON type: an object
(a Reference, a CodeableConcept, a Quantity, a Period, a backbone element),
a list, text, or a finite number. A resource that breaks this is one
sentence naming the file, the line and the element, never its value.
"""

from __future__ import annotations

import json
import math

MAX_DEPTH = 64
MAX_INT_DIGITS = 30

OBJ, LIST, TEXT, NUM = "a JSON object", "a list", "text", "a finite number"
REF = CC = PERIOD = OBJ
QTY = {"value": NUM, "unit": TEXT, "code": TEXT, "system": TEXT}
CODED = {"coding": LIST, "text": TEXT}
_MED = {"medicationCodeableConcept": CODED, "medicationReference": REF}

#: Per resource type, the elements the adapter reads and their types (a
#: dict: an object whose own elements are checked too).
SHAPES: dict[str, dict[str, object]] = {
    "*": {"id": TEXT, "resourceType": TEXT, "subject": REF, "patient": REF, "status": TEXT,
          "encounter": REF, "contained": LIST, "identifier": LIST},
    "Bundle": {"entry": LIST},
    "Patient": {"birthDate": TEXT, "gender": TEXT, "managingOrganization": REF,
                "deceasedDateTime": TEXT},
    "Organization": {"name": TEXT},
    "Condition": {"code": CODED, "verificationStatus": CODED, "onsetDateTime": TEXT,
                  "onsetPeriod": PERIOD, "recordedDate": TEXT},
    "Encounter": {"type": LIST, "class": OBJ, "period": PERIOD, "serviceProvider": REF,
                  "participant": LIST, "hospitalization": OBJ},
    "Procedure": {"code": CODED, "performedDateTime": TEXT, "performedPeriod": PERIOD,
                  "performer": LIST},
    "Observation": {"code": CODED, "valueQuantity": QTY, "valueInteger": NUM,
                    "effectiveDateTime": TEXT, "effectivePeriod": PERIOD, "issued": TEXT},
    "Medication": {"code": CODED, "ingredient": LIST},
    "MedicationDispense": {**_MED, "daysSupply": QTY, "quantity": QTY, "whenHandedOver": TEXT,
                           "whenPrepared": TEXT, "dosageInstruction": LIST,
                           "authorizingPrescription": LIST, "performer": LIST},
    "MedicationRequest": {**_MED, "intent": TEXT, "authoredOn": TEXT, "requester": REF,
                          "dosageInstruction": LIST,
                          "dispenseRequest": {"expectedSupplyDuration": QTY, "quantity": QTY,
                                              "validityPeriod": PERIOD,
                                              "numberOfRepeatsAllowed": NUM}},
    "MedicationAdministration": {**_MED, "effectiveDateTime": TEXT, "effectivePeriod": PERIOD,
                                 "performer": LIST},
    "MedicationStatement": {**_MED, "effectiveDateTime": TEXT, "effectivePeriod": PERIOD,
                            "dateAsserted": TEXT, "dosage": LIST},
    "ResearchSubject": {"study": REF, "individual": REF, "period": PERIOD},
    "ResearchStudy": {"title": TEXT},
    "Practitioner": {},
}  # fmt: skip


class ShapeError(ValueError):
    """Where and why a resource is malformed (never its value)."""


def _constant(name: str):
    raise ShapeError(f"holds {name}, which JSON does not allow")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ShapeError("holds a number too large for a float")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ShapeError(f"holds a whole number of more than {MAX_INT_DIGITS} digits")
    return int(text)


def _depth(value: object, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ShapeError(f"is nested more than {MAX_DEPTH} deep")
    if isinstance(value, dict):
        for v in value.values():
            _depth(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _depth(v, depth + 1)


def loads(text: str) -> object:
    """JSON parsed strictly; a fault is a :class:`ShapeError` (or the
    decoder's own ``JSONDecodeError`` for text that is not JSON)."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise ShapeError(f"is nested more than {MAX_DEPTH} deep") from None
    _depth(value)
    return value


def _is(kind: str, value: object) -> bool:
    if kind == OBJ:
        return isinstance(value, dict)
    if kind == LIST:
        return isinstance(value, list)
    if kind == TEXT:
        return isinstance(value, str)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check(node: dict, shape: dict, path: str) -> None:
    for key, kind in shape.items():
        if key not in node or node[key] is None:
            continue
        where = f"{path}.{key}"
        if isinstance(kind, dict):
            if not isinstance(node[key], dict):
                raise ShapeError(f"{where} must be {OBJ}")
            _check(node[key], kind, where)
        elif not _is(kind, node[key]):
            raise ShapeError(f"{where} must be {kind}")


def check(resource: dict) -> None:
    """Raise :class:`ShapeError` naming the first element of the wrong type."""
    kind = resource.get("resourceType")
    name = kind if isinstance(kind, str) and kind in SHAPES else "resource"
    _check(resource, SHAPES["*"], name)
    if name in SHAPES:
        _check(resource, SHAPES[name], name)
