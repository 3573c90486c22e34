"""Deterministic synthetic data shaped like a French DMP (Dossier Médical Partagé), for benchmarks and demos.

Every value is made up. Per patient (about 41 resources): a Patient with an INS-NIR, about 20
DocumentReferences (LOINC document types, class "Compte rendu"), about 15 ExplanationOfBenefit (AMO
reimbursements), 2 AllergyIntolerance and 3 MedicationStatement; shared by all patients: 200
Practitioners (RPPS) and 50 Organizations (FINESS; the first five are the CPAMs acting as insurers, given
a FINESS-format identifier like the others for uniformity).

Resources carry deterministic ids (``pat-000123``, ``doc-000123-07``…) and reference each other by them,
so the whole data set is known in advance: the same ``patients``, ``seed`` and ``today`` always give the
same resources. Each patient draws from its own random stream, so patient 123 does not change when more
patients are generated.

:func:`generate` yields batches in dependency order (the shared pools, then the patients, then what
refers to them); no batch refers to a resource of the same batch. :func:`load` stores them through any
``create_many`` that assigns its own ids (the server's bulk write path does), rewriting every reference
to the ids already assigned.
"""

from __future__ import annotations

import calendar
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

Json = dict[str, Any]

PRACTITIONERS = 200
ORGANIZATIONS = 50
INSURERS = 5

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
RPPS = "urn:oid:1.2.250.1.71.4.2.1"
FINESS = "urn:oid:1.2.250.1.71.4.2.2"
LOINC = "http://loinc.org"
CLASS_DOC = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
# Product codes are not from a real code system: an explicit synthetic namespace says so.
SYNTHETIC_PRODUCTS = "urn:dmp-fhir:synthetic:acte"

DOC_TYPES = {
    "11488-4": "Compte rendu de consultation",
    "11490-0": "Lettre de liaison à la sortie d'un établissement de soins",
    "11502-2": "Compte rendu d'examens biologiques",
    "11505-5": "Compte rendu d'acte diagnostique ou thérapeutique",
    "11506-3": "Note de suivi",
    "18748-4": "Compte rendu d'imagerie médicale",
    "15507-7": "Compte rendu de passage aux urgences",
    "60591-5": "Synthèse médicale",
    "57833-6": "Prescription de produits de santé",
    "60593-1": "Dispensation médicamenteuse",
}

FAMILIES = [
    "Lefèvre", "Müller", "Noël", "Gérard", "Bénard", "Hérault", "Lemaître", "Dubois-Pérez", "Martin",
    "Bernard", "Petit", "Durand", "Leroy", "Moreau", "Girard", "Faure", "Rousseau", "Mercier", "Chevalier",
    "François", "Rivière", "Ménard", "Évrard", "Brûlé", "Crémieux", "Delétang", "Géraud", "Bécaud",
    "Désiré", "Rémy", "Lacôte", "Çelik", "Nguyễn", "Le Gall", "Marchand", "Fontaine", "Garnier", "Lambert",
    "Barbier", "Roussel", "Perrin", "Guérin", "Boucher", "Lefèbvre", "Fèvre", "Hoarau", "Caron", "Benoît",
]  # fmt: skip
GIVEN = {
    "female": [
        "Hélène", "Bénédicte", "Gaëlle", "Chloé", "Zoé", "Anaïs", "Maëlle", "Noémie", "Éloïse", "Cécile",
        "Agnès", "Léa", "Inès", "Margaux", "Océane", "Amélie", "Clémence", "Mélanie", "Françoise", "Noëlle",
    ],
    "male": [
        "François", "Noël", "Jérôme", "Loïc", "Raphaël", "Clément", "Gaël", "Théo", "Hervé", "Benoît",
        "Grégoire", "Joël", "Stéphane", "Frédéric", "Sébastien", "André", "René", "Rémi", "Jean-Noël", "Aurélien",
    ],
}  # fmt: skip
CITIES = [
    ("Paris", "75011"), ("Lyon", "69003"), ("Marseille", "13005"), ("Toulouse", "31000"), ("Nice", "06000"),
    ("Nantes", "44000"), ("Montpellier", "34000"), ("Strasbourg", "67000"), ("Bordeaux", "33000"),
    ("Lille", "59000"), ("Rennes", "35000"), ("Reims", "51100"), ("Saint-Étienne", "42000"),
    ("Le Havre", "76600"), ("Grenoble", "38000"), ("Dijon", "21000"), ("Angers", "49000"), ("Nîmes", "30000"),
    ("Besançon", "25000"), ("Orléans", "45000"), ("Clermont-Ferrand", "63000"), ("Béziers", "34500"),
    ("Aix-en-Provence", "13100"), ("Saint-Denis", "97400"),
]  # fmt: skip
STREETS = ["rue de la République", "avenue Jean-Jaurès", "place de l'Église", "rue du Château",
           "boulevard Gambetta", "chemin des Écoliers", "rue Émile-Zola", "allée des Frênes"]  # fmt: skip
ORG_KINDS = ["Centre hospitalier", "Clinique", "Laboratoire de biologie médicale", "Pharmacie",
             "Centre de radiologie", "Maison de santé pluriprofessionnelle"]  # fmt: skip
PROFESSIONAL_ACTS = [
    ("G", "Consultation de médecine générale", 26.50), ("APC", "Avis ponctuel de consultant", 56.50),
    ("CS", "Consultation de spécialiste", 30.00), ("ZCQM006", "Radiographie du thorax", 21.28),
    ("B", "Examen de biologie médicale", 17.82), ("AMI", "Acte infirmier", 9.45),
]  # fmt: skip
PHARMACY_ITEMS = [
    ("3400930000015", "Paracétamol 1 g, comprimé, boîte de 8", 2.18),
    ("3400930000022", "Amoxicilline 1 g, comprimé, boîte de 6", 5.46),
    ("3400930000039", "Metformine 850 mg, comprimé, boîte de 90", 6.79),
    ("3400930000046", "Lévothyroxine 75 µg, comprimé, boîte de 90", 3.86),
    ("3400930000053", "Atorvastatine 20 mg, comprimé, boîte de 90", 12.42),
]
ALLERGENS = ["Pénicilline", "Arachide", "Pollen de bouleau", "Lactose", "Acariens", "Latex", "Iode",
             "Fruits à coque", "Aspirine", "Œuf"]  # fmt: skip
MEDICATIONS = [
    ("Doliprane 1000 mg, comprimé", "1 comprimé jusqu'à 3 fois par jour"),
    ("Lévothyrox 75 µg, comprimé", "1 comprimé le matin à jeun"),
    ("Kardégic 75 mg, poudre", "1 sachet par jour"),
    ("Metformine 850 mg, comprimé", "1 comprimé matin et soir"),
    ("Ventoline 100 µg, suspension pour inhalation", "2 bouffées si besoin"),
    ("Amoxicilline 1 g, comprimé", "1 comprimé 3 fois par jour pendant 7 jours"),
    ("Inexium 20 mg, comprimé", "1 comprimé le soir"),
]

_PARIS = ZoneInfo("Europe/Paris")


# --- identifiers ----------------------------------------------------------------------------------------


def nir_key(number: str) -> str:
    """The INS-NIR control key of 13 digits: 97 − (number mod 97), on two digits."""
    return f"{97 - int(number) % 97:02d}"


def _luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def patient_id(i: int) -> str:
    return f"pat-{i:06d}"


def practitioner_id(i: int) -> str:
    return f"pra-{i:04d}"


def organization_id(i: int) -> str:
    return f"org-{i:04d}"


def _ref(rtype: str, rid: str, display: str | None = None) -> Json:
    out: Json = {"reference": f"{rtype}/{rid}"}
    if display:
        out["display"] = display
    return out


def _instant(moment: datetime) -> str:
    return moment.astimezone(_PARIS).isoformat(timespec="seconds")


def _moment(rng: random.Random, today: date, days_back: int) -> datetime:
    """A working-hours moment within ``days_back`` days before ``today`` (Paris time)."""
    day = today - timedelta(days=rng.randint(1, days_back))
    return datetime(day.year, day.month, day.day, rng.randint(8, 18), rng.randint(0, 59), tzinfo=_PARIS)


# --- shared pools ---------------------------------------------------------------------------------------


def _pool_rng(seed: int, what: str, i: int) -> random.Random:
    return random.Random(f"{seed}:{what}:{i}")


def practitioner(seed: int, i: int) -> Json:
    rng = _pool_rng(seed, "practitioner", i)
    gender = rng.choice(["female", "male"])
    rpps = "10" + "".join(str(rng.randint(0, 9)) for _ in range(8))
    return {
        "resourceType": "Practitioner",
        "id": practitioner_id(i),
        "identifier": [{"system": RPPS, "value": rpps + _luhn_digit(rpps)}],
        "active": True,
        "name": [{"family": rng.choice(FAMILIES), "given": [rng.choice(GIVEN[gender])], "prefix": ["Dr"]}],
        "gender": gender,
    }


def organization(seed: int, i: int) -> Json:
    rng = _pool_rng(seed, "organization", i)
    city, postal = CITIES[i % len(CITIES)]
    finess = postal[:2] + "".join(str(rng.randint(0, 9)) for _ in range(6))
    name = f"CPAM de {city}" if i < INSURERS else f"{rng.choice(ORG_KINDS)} de {city}"
    return {
        "resourceType": "Organization",
        "id": organization_id(i),
        "identifier": [{"system": FINESS, "value": finess + _luhn_digit(finess)}],
        "active": True,
        "name": name,
        "address": [{"city": city, "postalCode": postal, "country": "FR"}],
    }


def pools(seed: int) -> list[Json]:
    """The shared Organizations and Practitioners (no references)."""
    return [organization(seed, i) for i in range(ORGANIZATIONS)] + [
        practitioner(seed, i) for i in range(PRACTITIONERS)
    ]


# --- one patient ----------------------------------------------------------------------------------------


def patient(seed: int, i: int) -> Json:
    """Patient ``i``: INS-NIR, accented names, address, general practitioner, managing organization."""
    rng = random.Random(f"{seed}:patient:{i}")
    gender = rng.choice(["female", "male"])
    year, month = rng.randint(1930, 2020), rng.randint(1, 12)
    day = rng.randint(1, calendar.monthrange(year, month)[1])
    city, postal = rng.choice(CITIES)
    number = (
        f"{1 if gender == 'male' else 2}{year % 100:02d}{month:02d}{postal[:2]}"
        f"{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}"
    )
    given = [rng.choice(GIVEN[gender])]
    if rng.random() < 0.3:
        given.append(rng.choice(GIVEN[gender]))
    return {
        "resourceType": "Patient",
        "id": patient_id(i),
        "identifier": [{"use": "official", "system": INS_NIR, "value": number + nir_key(number)}],
        "active": True,
        "name": [{"use": "official", "family": rng.choice(FAMILIES), "given": given}],
        "gender": gender,
        "birthDate": f"{year:04d}-{month:02d}-{day:02d}",
        "address": [
            {
                "use": "home",
                "line": [f"{rng.randint(1, 120)} {rng.choice(STREETS)}"],
                "city": city,
                "postalCode": postal,
                "country": "FR",
            }
        ],
        "generalPractitioner": [_ref("Practitioner", practitioner_id(rng.randrange(PRACTITIONERS)))],
        "managingOrganization": _ref("Organization", organization_id(rng.randrange(INSURERS, ORGANIZATIONS))),
    }


def _document(rng: random.Random, pid: str, rid: str, gp: Json, today: date) -> Json:
    code = rng.choice(list(DOC_TYPES))
    author = gp if rng.random() < 0.4 else _ref("Practitioner", practitioner_id(rng.randrange(PRACTITIONERS)))
    when = _moment(rng, today, 3 * 365)
    return {
        "resourceType": "DocumentReference",
        "id": rid,
        "status": "current",
        "type": {"coding": [{"system": LOINC, "code": code, "display": DOC_TYPES[code]}]},
        "category": [{"coding": [{"system": CLASS_DOC, "code": "10", "display": "Compte rendu"}]}],
        "subject": _ref("Patient", pid),
        "date": _instant(when),
        "author": [author],
        "description": DOC_TYPES[code],
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "language": "fr-FR",
                    "url": f"https://documents.dmp.example/{rid}.pdf",
                    "title": f"{DOC_TYPES[code]} du {when:%d/%m/%Y}",
                    "creation": _instant(when),
                }
            }
        ],
    }


def _eob(rng: random.Random, pid: str, rid: str, today: date) -> Json:
    pharmacy = rng.random() < 0.4
    code, text, price = rng.choice(PHARMACY_ITEMS if pharmacy else PROFESSIONAL_ACTS)
    when = _moment(rng, today, 730)
    quantity = rng.randint(1, 3) if pharmacy else 1
    submitted = round(price * quantity, 2)
    benefit = round(submitted * rng.choice([0.65, 0.7, 1.0]), 2)
    return {
        "resourceType": "ExplanationOfBenefit",
        "id": rid,
        "status": "active",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": "pharmacy" if pharmacy else "professional"}]},
        "use": "claim",
        "patient": _ref("Patient", pid),
        "created": _instant(when),
        "insurer": _ref("Organization", organization_id(rng.randrange(INSURERS))),
        "provider": _ref("Organization", organization_id(rng.randrange(INSURERS, ORGANIZATIONS))),
        "outcome": "complete",
        "insurance": [{"focal": True, "coverage": {"display": "AMO"}}],
        "item": [
            {
                "sequence": 1,
                "productOrService": {"coding": [{"system": SYNTHETIC_PRODUCTS, "code": code}], "text": text},
                "servicedDate": when.date().isoformat(),
                "quantity": {"value": quantity},
                "net": {"value": submitted, "currency": "EUR"},
                "adjudication": [
                    {
                        "category": {"coding": [{"system": ADJUDICATION, "code": "submitted"}]},
                        "amount": {"value": submitted, "currency": "EUR"},
                    },
                    {
                        "category": {"coding": [{"system": ADJUDICATION, "code": "benefit"}]},
                        "amount": {"value": benefit, "currency": "EUR"},
                    },
                ],
            }
        ],
        "total": [
            {
                "category": {"coding": [{"system": ADJUDICATION, "code": "benefit"}]},
                "amount": {"value": benefit, "currency": "EUR"},
            }
        ],
    }


def _allergy(rng: random.Random, pid: str, rid: str, allergen: str, today: date) -> Json:
    return {
        "resourceType": "AllergyIntolerance",
        "id": rid,
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION, "code": "confirmed"}]},
        "type": "allergy",
        "criticality": rng.choice(["low", "high", "unable-to-assess"]),
        "code": {"text": allergen},
        "patient": _ref("Patient", pid),
        "recordedDate": _moment(rng, today, 5 * 365).date().isoformat(),
    }


def _medication(rng: random.Random, pid: str, rid: str, today: date) -> Json:
    name, dosage = rng.choice(MEDICATIONS)
    start = _moment(rng, today, 3 * 365).date()
    active = rng.random() < 0.5
    period = {"start": start.isoformat()}
    if not active:
        period["end"] = min(start + timedelta(days=rng.randint(7, 180)), today).isoformat()
    return {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": "active" if active else "completed",
        "medicationCodeableConcept": {"text": name},
        "subject": _ref("Patient", pid),
        "effectivePeriod": period,
        "dosage": [{"text": dosage}],
    }


def patient_records(seed: int, i: int, today: date) -> list[Json]:
    """What refers to patient ``i``: documents, reimbursements, allergies and medications."""
    rng = random.Random(f"{seed}:records:{i}")
    pid = patient_id(i)
    gp = patient(seed, i)["generalPractitioner"][0]
    docs, eobs = record_counts(seed, i)
    out = [_document(rng, pid, f"doc-{i:06d}-{k:02d}", gp, today) for k in range(docs)]
    out += [_eob(rng, pid, f"eob-{i:06d}-{k:02d}", today) for k in range(eobs)]
    out += [
        _allergy(rng, pid, f"alg-{i:06d}-{k}", allergen, today)
        for k, allergen in enumerate(rng.sample(ALLERGENS, 2))
    ]
    out += [_medication(rng, pid, f"med-{i:06d}-{k}", today) for k in range(3)]
    return out


def generate(
    patients: int, seed: int, batch_size: int = 1000, today: date | None = None
) -> Iterator[list[Json]]:
    """Batches of about ``batch_size`` resources in dependency order; no batch refers to its own members.

    The shared pools come first, then the Patients, then per patient everything that refers to it (a
    patient's records are never split over two batches). ``today`` (default: the current date) anchors
    every date.
    """
    today = today or date.today()
    yield pools(seed)
    for start in range(0, patients, batch_size):
        yield [patient(seed, i) for i in range(start, min(patients, start + batch_size))]
    batch: list[Json] = []
    for i in range(patients):
        batch.extend(patient_records(seed, i, today))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- loading through a server-assigned-id bulk path -----------------------------------------------------


def remap(node: Any, ids: dict[str, str]) -> Any:
    """A copy of ``node`` with every ``{"reference": "Type/local-id"}`` rewritten through ``ids``.

    Raises ``KeyError`` for a reference to a resource not stored yet (batches out of dependency order).
    """
    if isinstance(node, dict):
        out = {k: remap(v, ids) for k, v in node.items()}
        ref = node.get("reference")
        if isinstance(ref, str):
            out["reference"] = ids[ref]
        return out
    if isinstance(node, list):
        return [remap(v, ids) for v in node]
    return node


CreateMany = Callable[[list[Json]], Awaitable[list[Any]]]


class Progress:
    """A single, rewritten line on stderr: resources stored, total, rate."""

    def __init__(self, total: int | None, label: str = "loading") -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.started = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        of = f"/{self.total:,}" if self.total else ""
        sys.stderr.write(f"\r{self.label}: {self.done:,}{of} resources, {rate:,.0f}/s, {elapsed:,.0f} s   ")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def record_counts(seed: int, i: int) -> tuple[int, int]:
    """How many DocumentReferences and ExplanationOfBenefits patient ``i`` has (a stream of their own)."""
    rng = random.Random(f"{seed}:counts:{i}")
    return rng.randint(16, 24), rng.randint(12, 18)


def expected_total(patients: int, seed: int) -> int:
    """How many resources :func:`generate` yields."""
    per_patient = sum(sum(record_counts(seed, i)) for i in range(patients))
    return ORGANIZATIONS + PRACTITIONERS + patients + per_patient + patients * (2 + 3)


async def load(
    create_many: CreateMany,
    batches: Iterator[list[Json]],
    on_stored: Callable[[list[Json]], None] | None = None,
    progress: Progress | None = None,
) -> dict[str, str]:
    """Store ``batches`` in order through ``create_many`` (which assigns ids), references rewritten.

    ``create_many`` returns, in order, one record per resource with the stored ``resource`` (a dict) or
    ``.resource`` attribute. ``on_stored`` sees each stored batch (server ids, rewritten references).
    Returns the map from ``Type/local-id`` to ``Type/assigned-id``.
    """
    ids: dict[str, str] = {}
    for batch in batches:
        bodies = [remap(r, ids) for r in batch]
        records = await create_many(bodies)
        if len(records) != len(bodies):
            raise RuntimeError(f"create_many stored {len(records)} of {len(bodies)} resources")
        stored = [r.resource if hasattr(r, "resource") else r["resource"] for r in records]
        for local, res in zip(batch, stored, strict=True):
            ids[f"{local['resourceType']}/{local['id']}"] = f"{res['resourceType']}/{res['id']}"
        if on_stored is not None:
            on_stored(stored)
        if progress is not None:
            progress.add(len(stored))
    return ids


def utc(text: str) -> datetime:
    """An instant or dateTime string of this module as an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)
