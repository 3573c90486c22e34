"""Synthetic, deterministic French DMP data (``fhir-server demo-data``).

Per patient: a Patient with a valid INS-NIR (sex, year and month of birth and birthplace consistent with
``gender``, ``birthDate`` and the birthPlace extension; Corsican and overseas births included), accented
names, an address, a médecin traitant and the channel through which the DMP was opened (shares as
published: 19 % online, 31 % pharmacy, 32 % CPAM, 18 % professionals); documents of the DMP types
(category from the type, some masked from professionals) with a small PDF or CDA as a Binary;
allergies; long-term treatments (MedicationStatement); and 12 months of reimbursements as rows of the
flat extract (DOMAIN.md). Shared by all: the professionals and organizations of :mod:`demo_pools`.

The same ``seed`` and ``as_of`` give the same bytes. Each patient draws from a stream of its own, so
patient 123 is the same whatever the number of patients; ids are fixed (``demo<seed>-pat-000123``) and
resources are written with PUT, so loading the same data twice makes new versions, not duplicates.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fhir_server.dmp import systems
from fhir_server.dmp.demo_binary import DocumentText, cda_document, pdf_document
from fhir_server.dmp.demo_care import PARIS, Care, DocSpec, Invoice, PatientCtx
from fhir_server.dmp.demo_names import (
    ABROAD,
    ALLERGENS,
    BIRTHPLACE_WEIGHTS,
    CHANNEL_SHARES,
    CITIES,
    CLASSES,
    CORSICA,
    DOC_TYPES,
    DRUGS,
    FAMILY_NAMES,
    GIVEN_NAMES,
    MAINLAND,
    OVERSEAS,
    STREETS,
    City,
)
from fhir_server.dmp.demo_pools import Organization, Pools, Professional, coding, reference
from fhir_server.dmp.nir import with_key

Json = dict[str, Any]

VISIBILITY_DISPLAY = {
    "MASQUE_PS": "Masqué aux professionnels de santé",
    "INVISIBLE_PATIENT": "Non visible par le patient",
    "INVISIBLE_REPRESENTANTS_LEGAUX": "Non visible par les représentants légaux du patient",
}
_GOLDEN = (math.sqrt(5) - 1) / 2
_ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
_BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
_UUIDS = uuid.UUID("6f0c1d0e-5d4b-4e8a-9a61-2f3d4c5b6a79")  # namespace of the bundles' fullUrls


@dataclass(frozen=True)
class DemoOptions:
    """What to generate: how many patients, from which seed, with dates up to ``as_of``."""

    patients: int
    seed: int
    as_of: date
    bundle_entries: int = 500

    @property
    def prefix(self) -> str:
        """The start of every id, so data of different seeds can live side by side."""
        return f"demo{self.seed}"


@dataclass
class PatientData:
    """One patient's resources (the Patient first) and extract rows."""

    resources: list[Json]
    rows: list[list[str]]


def channel_of(seed: int, i: int) -> tuple[str, str]:
    """The creation channel of patient ``i``: a golden-ratio sequence over the published shares, so that
    any number of consecutive patients follows the shares closely."""
    u = (random.Random(f"{seed}:channel").random() + i * _GOLDEN) % 1.0
    total = sum(share for _, _, share in CHANNEL_SHARES)
    edge = 0.0
    for code, display, share in CHANNEL_SHARES:
        edge += share / total
        if u < edge:
            return code, display
    return CHANNEL_SHARES[-1][0], CHANNEL_SHARES[-1][1]


def _euros(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _instant(doc: DocSpec) -> str:
    return doc.when.astimezone(PARIS).isoformat(timespec="seconds")


class DemoGenerator:
    """Generates the shared pools once, then patients one by one (in order: NIRs are kept unique)."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.pools = Pools(options.seed, options.patients, options.prefix)
        self._nirs: set[str] = set()

    def reference_resources(self) -> list[Json]:
        """Organizations, Practitioners and PractitionerRoles."""
        return self.pools.resources()

    def patient(self, i: int) -> PatientData:
        """Patient ``i`` and everything about it."""
        opts = self.options
        rng = random.Random(f"{opts.seed}:patient:{i}")
        pid = f"{opts.prefix}-pat-{i:06d}"
        gender = rng.choice(("female", "male"))
        age = min(int(rng.betavariate(1.4, 1.9) * 100), 99)
        born = opts.as_of - timedelta(days=age * 365 + rng.randint(1, 364))
        # Drawn from the whole list, so that the stream (and the identity drawn after it) does not
        # depend on how many cities are in use; the patient lives in one of those.
        drawn = rng.randrange(len(CITIES))
        city = drawn % len(self.pools.cities)
        place_name, insee = self._birthplace(rng, CITIES[drawn])
        nir = self._nir(rng, gender, born, insee)
        given = [rng.choice(GIVEN_NAMES[gender])]
        if rng.random() < 0.3:
            given.append(rng.choice(GIVEN_NAMES[gender]))
        family = rng.choice(FAMILY_NAMES)
        gp = self.pools.pick(rng, city, "gp")
        chronic = self._chronic(rng, age)
        ctx = PatientCtx(
            rng, opts.as_of, age, born, gender, city, gp, chronic, bool(chronic) and rng.random() < 0.3
        )
        patient = self._patient_resource(ctx, i, pid, nir, given, family, born, place_name, insee)
        care = Care(ctx, self.pools)
        care.draw()
        resources = [patient]
        text = (f"{given[0]} {family}", given[0], family, gender, born.isoformat(), nir)
        resources += self._documents(care.documents, i, pid, text)
        resources += self._consents(pid, [gp, *(d.author for d in care.documents)])
        resources += self._allergies(ctx, i, pid)
        resources += self._medications(ctx, i, pid)
        return PatientData(resources, self._rows(care.invoices, i, nir))

    # -- identity ------------------------------------------------------------------------------------

    @staticmethod
    def _birthplace(rng: random.Random, near: City) -> tuple[str, str]:
        """Where the patient was born (``near`` or elsewhere): a name and the 5 characters of the NIR
        after the month of birth."""
        where = rng.choices(range(len(BIRTHPLACE_WEIGHTS)), BIRTHPLACE_WEIGHTS)[0]
        if where == 4:
            return rng.choice(ABROAD)
        place = (near, rng.choice(MAINLAND), rng.choice(CORSICA), rng.choice(OVERSEAS))[where]
        return place.name, place.insee

    def _nir(self, rng: random.Random, gender: str, born: date, insee: str) -> str:
        """A NIR consistent with sex, year and month of birth and birthplace, not given to anyone else."""
        while True:
            body = f"{1 if gender == 'male' else 2}{born.year % 100:02d}{born.month:02d}{insee}{rng.randint(1, 999):03d}"
            nir = with_key(body)
            if nir not in self._nirs:
                self._nirs.add(nir)
                return nir

    @staticmethod
    def _chronic(rng: random.Random, age: int) -> list[Any]:
        chance = 0.65 if age >= 60 else 0.3 if age >= 35 else 0.08
        if rng.random() >= chance:
            return []
        long_term = [d for d in DRUGS if d.chronic]
        return rng.sample(long_term, 1 if age < 35 else rng.randint(1, 3))

    def _patient_resource(
        self,
        ctx: PatientCtx,
        i: int,
        pid: str,
        nir: str,
        given: list[str],
        family: str,
        born: date,
        place_name: str,
        insee: str,
    ) -> Json:
        rng = ctx.rng
        code, display = channel_of(self.options.seed, i)
        city = self.pools.cities[ctx.city]
        birth_place: Json = (
            {"city": place_name, "country": "FR"} if insee[:2] != "99" else {"country": place_name}
        )
        names: list[Json] = [{"use": "official", "family": family, "given": given}]
        if ctx.gender == "female" and ctx.age >= 25 and rng.random() < 0.4:
            names.append({"use": "usual", "family": rng.choice(FAMILY_NAMES), "given": given[:1]})
        return {
            "resourceType": "Patient",
            "id": pid,
            "extension": [
                {
                    "url": systems.CREATION_CHANNEL_EXTENSION,
                    "valueCoding": {"system": systems.CREATION_CHANNEL, "code": code, "display": display},
                },
                {"url": _BIRTH_PLACE, "valueAddress": birth_place},
            ],
            "identifier": [{"use": "official", "system": systems.INS_NIR, "value": nir}],
            "active": True,
            "name": names,
            "telecom": [
                {
                    "system": "phone",
                    "value": f"06 39 98 {rng.randint(0, 99):02d} {rng.randint(0, 99):02d}",
                    "use": "mobile",
                }
            ],
            "gender": ctx.gender,
            "birthDate": born.isoformat(),
            "address": [
                {
                    "use": "home",
                    "line": [f"{rng.randint(1, 150)} {rng.choice(STREETS)}"],
                    "city": city.name,
                    "postalCode": city.postal,
                    "country": "FR",
                }
            ],
            "generalPractitioner": [ctx.gp.ref()],
        }

    # -- documents -----------------------------------------------------------------------------------

    def _consents(self, pid: str, care_team: list[Any]) -> list[Json]:
        """The patient's authorization of each professional of their care team (docs/access-rules.md):
        without it a professional sees nothing of the DMP."""
        out: list[Json] = []
        seen: set[str] = set()
        for pro in care_team:
            if pro.id in seen:
                continue
            seen.add(pro.id)
            out.append(
                {
                    "resourceType": "Consent",
                    "id": f"{pid}-consent-{len(seen):03d}",
                    "status": "active",
                    "scope": {"coding": [{"system": systems.CONSENT_SCOPE, "code": "patient-privacy"}]},
                    "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                    "patient": {"reference": f"Patient/{pid}"},
                    "policyRule": {"coding": [{"system": systems.ACT_CODE, "code": "OPTIN"}]},
                    "provision": {
                        "type": "permit",
                        "actor": [
                            {
                                "role": {"coding": [{"system": systems.PARTICIPATION_TYPE, "code": "PRCP"}]},
                                "reference": pro.ref(),
                            }
                        ],
                    },
                }
            )
        return out

    def _documents(self, specs: list[DocSpec], i: int, pid: str, who: tuple[str, ...]) -> list[Json]:
        """DocumentReferences and their Binaries, numbered in date order."""
        specs = sorted(specs, key=lambda d: d.when)
        ids = {id(d): f"{self.options.prefix}-doc-{i:06d}-{k:03d}" for k, d in enumerate(specs)}
        out: list[Json] = []
        for doc in specs:
            did = ids[id(doc)]
            bid = did.replace("-doc-", "-bin-")
            out += self._document(doc, did, bid, pid, who, ids[id(doc.replaces)] if doc.replaces else None)
        return out

    def _document(
        self, doc: DocSpec, did: str, bid: str, pid: str, who: tuple[str, ...], replaces: str | None
    ) -> list[Json]:
        kind = DOC_TYPES[doc.type_code]
        when = _instant(doc)
        name, given, family, gender, born, nir = who
        text = DocumentText(
            did, doc.type_code, kind.label, name, given, family, gender, born, nir,
            doc.author.name, doc.author.rpps, doc.author.organization.name, when, tuple(doc.body),
        )  # fmt: skip
        content = cda_document(text) if kind.cda else pdf_document(text)
        mime = "text/xml" if kind.cda else "application/pdf"
        meta: Json = {}
        if doc.labels:
            meta["security"] = [
                {"system": systems.VISIBILITY, "code": c, "display": VISIBILITY_DISPLAY[c]}
                for c in doc.labels
            ]
        reference_ = {
            "resourceType": "DocumentReference",
            "id": did,
            **({"meta": meta} if meta else {}),
            "masterIdentifier": {
                "system": "urn:ietf:rfc:3986",
                "value": f"urn:uuid:{uuid.uuid5(_UUIDS, did)}",
            },
            "status": "superseded" if doc.superseded else "current",
            "docStatus": "final",
            "type": coding(systems.LOINC, doc.type_code, kind.label),
            "category": [coding(systems.DOCUMENT_CLASS, kind.class_code, CLASSES[kind.class_code])],
            "subject": reference("Patient", pid),
            "date": when,
            "author": [doc.author.ref(), _org_ref(doc.author.organization)],
            "custodian": _org_ref(doc.author.organization),
            **(
                {"relatesTo": [{"code": "replaces", "target": reference("DocumentReference", replaces)}]}
                if replaces
                else {}
            ),
            "description": kind.label,
            "content": [
                {
                    "attachment": {
                        "contentType": mime,
                        "language": "fr-FR",
                        "url": f"Binary/{bid}",
                        "size": len(content),
                        "hash": base64.b64encode(hashlib.sha1(content).digest()).decode(),
                        "title": f"{kind.label} du {doc.when:%d/%m/%Y}",
                        "creation": when,
                    }
                }
            ],
            "context": {"period": {"start": when}},
        }
        binary = {
            "resourceType": "Binary",
            "id": bid,
            **({"meta": meta} if meta else {}),
            "contentType": mime,
            "securityContext": reference("DocumentReference", did),
            "data": base64.b64encode(content).decode(),
        }
        return [reference_, binary]

    # -- allergies and treatments --------------------------------------------------------------------

    def _allergies(self, ctx: PatientCtx, i: int, pid: str) -> list[Json]:
        rng = ctx.rng
        count = 0 if rng.random() < 0.7 else 1 if rng.random() < 0.75 else 2
        out = []
        for k, allergen in enumerate(rng.sample(ALLERGENS, count)):
            by_patient = rng.random() < 0.3  # the patient can add allergies to their DMP themselves
            recorded = ctx.as_of - timedelta(days=rng.randint(30, 3 * 365))
            out.append(
                {
                    "resourceType": "AllergyIntolerance",
                    "id": f"{self.options.prefix}-alg-{i:06d}-{k}",
                    "clinicalStatus": {"coding": [{"system": _ALLERGY_CLINICAL, "code": "active"}]},
                    "verificationStatus": {
                        "coding": [
                            {
                                "system": _ALLERGY_VERIFICATION,
                                "code": "unconfirmed" if by_patient else "confirmed",
                            }
                        ]
                    },
                    "type": "allergy",
                    "category": [allergen.category],
                    "criticality": rng.choice(("low", "high", "unable-to-assess")),
                    "code": {"text": allergen.text},
                    "patient": reference("Patient", pid),
                    "recordedDate": recorded.isoformat(),
                    "recorder": reference("Patient", pid) if by_patient else ctx.gp.ref(),
                    "reaction": [{"manifestation": [{"text": allergen.reaction}]}],
                }
            )
        return out

    def _medications(self, ctx: PatientCtx, i: int, pid: str) -> list[Json]:
        rng = ctx.rng
        out = []
        for k, drug in enumerate(ctx.chronic):
            start = ctx.as_of - timedelta(days=rng.randint(400, 10 * 365))
            out.append(
                {
                    "resourceType": "MedicationStatement",
                    "id": f"{self.options.prefix}-med-{i:06d}-{k}",
                    "status": "active",
                    "medicationCodeableConcept": {
                        "coding": [{"system": systems.CIP_UCD, "code": drug.cip13, "display": drug.label}],
                        "text": drug.label,
                    },
                    "subject": reference("Patient", pid),
                    "effectivePeriod": {"start": start.isoformat()},
                    "dateAsserted": (ctx.as_of - timedelta(days=rng.randint(1, 90))).isoformat(),
                    "informationSource": ctx.gp.ref(),
                    "dosage": [{"text": drug.dosage}],
                }
            )
        return out

    # -- reimbursements ------------------------------------------------------------------------------

    def _rows(self, invoices: list[Invoice], i: int, nir: str) -> list[list[str]]:
        """Extract rows, invoices in care-date order, numbered per patient."""
        rows = []
        ordered = sorted(invoices, key=lambda inv: (inv.care_date, inv.payment_date))
        for k, inv in enumerate(ordered):
            invoice_id = f"D{self.options.seed}-{i:06d}-{k:03d}"
            if isinstance(inv.performer, Professional):
                performer, kind = inv.performer.rpps, "PS"
            else:
                performer, kind = inv.performer.finess, "ETAB"
            for n, line in enumerate(inv.lines, start=1):
                rows.append(
                    [
                        nir, invoice_id, str(n), inv.care_date.isoformat(), inv.payment_date.isoformat(),
                        inv.prescriber.rpps if inv.prescriber else "", performer, kind, line.act.system,
                        line.act.code, line.label, str(line.quantity), _euros(line.base),
                        _euros(line.reimbursed), _euros(line.base - line.reimbursed),
                    ]
                )  # fmt: skip
        return rows


def _org_ref(org: Organization) -> Json:
    return reference("Organization", org.id, org.name)


# -- transaction bundles ------------------------------------------------------------------------------


def transaction(resources: list[Json]) -> Json:
    """A transaction Bundle that PUTs each resource at its fixed id."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(_UUIDS, r['resourceType'] + '/' + r['id'])}",
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


@dataclass
class Chunk:
    """One transaction Bundle, the extract rows of its patients, and how many patients it holds."""

    bundle: Json
    rows: list[list[str]]
    patients: int


def generate(options: DemoOptions) -> Iterator[Chunk]:
    """The whole data set as transaction Bundles of at most ``options.bundle_entries`` entries: the
    shared professionals and organizations first, then whole patients (a patient is never split, so
    every Bundle can be loaded on its own once the shared ones are)."""
    gen = DemoGenerator(options)
    shared = gen.reference_resources()
    size = max(1, options.bundle_entries)
    for start in range(0, len(shared), size):
        yield Chunk(transaction(shared[start : start + size]), [], 0)
    resources: list[Json] = []
    rows: list[list[str]] = []
    patients = 0
    for i in range(options.patients):
        data = gen.patient(i)
        if resources and len(resources) + len(data.resources) > size:
            yield Chunk(transaction(resources), rows, patients)
            resources, rows, patients = [], [], 0
        resources += data.resources
        rows += data.rows
        patients += 1
    if patients:
        yield Chunk(transaction(resources), rows, patients)
