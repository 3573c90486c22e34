"""A synthetic patient's care over the last years: the documents it left in the DMP and the invoices the
Assurance Maladie reimbursed.

Care is drawn as events (a GP visit, a blood test, an X-ray, a hospital stay…). An event in the last 12
months is invoiced (NGAP/CCAM/NABM/CIP13/LPP lines by the professional or establishment that performed
it, with the prescriber); some events also leave a document written by the same professional on the
same day, so documents and reimbursements tell the same story.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from fhir_server.dmp.demo_names import (
    BIOLOGY,
    CONSULTATION_REASONS,
    DRUGS,
    FINDINGS,
    FLU_VACCINE,
    GLUCOSE_STRIPS,
    GP_VISIT,
    HOME_VISIT,
    IMAGING,
    MASKED_REASONS,
    NURSE_ACT,
    NURSE_TRAVEL,
    PHYSIO_ACT,
    SPECIALIST_FOLLOW_UP,
    SPECIALIST_VISIT,
    TRAVEL,
    Act,
    Drug,
)
from fhir_server.dmp.demo_pools import Organization, Pools, Professional

PARIS = ZoneInfo("Europe/Paris")
HISTORY_DAYS = 3 * 365  # how far back documents go
EXTRACT_DAYS = 365  # how far back reimbursements go
# Deducted from the reimbursement of an adult (participation forfaitaire, franchise), in cents.
VISIT_DEDUCTION = 200
BOX_DEDUCTION = 100


@dataclass
class PatientCtx:
    """What the care of one patient depends on."""

    rng: random.Random
    as_of: date
    age: int
    born: date
    gender: str
    city: int
    gp: Professional
    chronic: list[Drug]
    ald: bool  # long-term condition: its treatments are reimbursed at 100 %

    @property
    def adult(self) -> bool:
        return self.age >= 18


@dataclass
class DocSpec:
    """A document to write: type, when, who, and what it says."""

    type_code: str
    when: datetime
    author: Professional
    body: list[str]
    labels: list[str] = field(default_factory=list)
    superseded: bool = False
    replaces: DocSpec | None = None


@dataclass
class Line:
    act: Act
    quantity: int
    reimbursed: int
    label: str

    @property
    def base(self) -> int:
        return self.act.cents * self.quantity


@dataclass
class Invoice:
    """One reimbursement: the care date, who performed it (a professional or an establishment), who
    prescribed it, and its lines."""

    care_date: date
    payment_date: date
    performer: Professional | Organization
    prescriber: Professional | None
    lines: list[Line]


class Care:
    """Draws the events of one patient into :attr:`documents` and :attr:`invoices`."""

    def __init__(self, ctx: PatientCtx, pools: Pools) -> None:
        self.ctx = ctx
        self.pools = pools
        self.rng = ctx.rng
        self.documents: list[DocSpec] = []
        self.invoices: list[Invoice] = []

    # -- helpers -------------------------------------------------------------------------------------

    def _day(self, days_back: int) -> date:
        """A day within ``days_back`` days before ``as_of``, and not before the patient was born."""
        lived = (self.ctx.as_of - self.ctx.born).days
        return self.ctx.as_of - timedelta(days=self.rng.randint(1, max(1, min(days_back, lived))))

    def _past(self, day: date) -> bool:
        return day < self.ctx.as_of

    def _moment(self, day: date) -> datetime:
        return datetime(
            day.year, day.month, day.day, self.rng.randint(8, 18), self.rng.randint(0, 59), tzinfo=PARIS
        )

    def _staff(self, key: str) -> Professional:
        return self.pools.pick(self.rng, self.ctx.city, key)

    def _org(self, kind: str) -> Organization:
        return self.pools.organizations[self.ctx.city, kind]

    def _recent(self, day: date) -> bool:
        return (self.ctx.as_of - day).days <= EXTRACT_DAYS

    def document(self, type_code: str, day: date, author: Professional, body: list[str]) -> DocSpec:
        """Record a document (kept only if ``day`` is past); a few are replaced by a corrected version."""
        doc = DocSpec(type_code, self._moment(day), author, body)
        if not self._past(day):
            return doc
        self.documents.append(doc)
        if self.rng.random() < 0.03 and self._past(doc.when.date() + timedelta(days=3)):
            doc.superseded = True
            fixed = DocSpec(
                type_code,
                doc.when + timedelta(days=self.rng.randint(1, 3)),
                author,
                [*body, "Version corrigée."],
            )
            fixed.replaces = doc
            self.documents.append(fixed)
        return doc

    def invoice(
        self,
        day: date,
        performer: Professional | Organization,
        prescriber: Professional | None,
        acts: list[tuple[Act, int]],
        deduction: int = 0,
        per_box: bool = False,
    ) -> None:
        """Bill ``acts`` (with quantities) if ``day`` is within the extract's window. For an adult,
        ``deduction`` is taken from the reimbursement: once from the first line, or with ``per_box``
        for each box of drug (the franchise médicale)."""
        if not self._recent(day) or not self._past(day):
            return
        lines = [Line(act, q, (act.cents * q * act.rate + 50) // 100, act.label) for act, q in acts]
        if deduction and self.ctx.adult:
            for line in [x for x in lines if x.act.system == "CIP13"] if per_box else lines[:1]:
                taken = deduction * line.quantity if per_box else deduction
                line.reimbursed = max(0, line.reimbursed - taken)
        delay = self.rng.randint(1, 4) if isinstance(performer, Organization) else self.rng.randint(2, 12)
        paid = min(day + timedelta(days=delay), self.ctx.as_of)
        self.invoices.append(Invoice(day, paid, performer, prescriber, lines))

    # -- events --------------------------------------------------------------------------------------

    def draw(self) -> None:
        """All the events of the patient."""
        ctx, rng = self.ctx, self.rng
        visits_per_year = 6 if ctx.age >= 70 or ctx.chronic else 4 if ctx.age < 6 else 2
        for _ in range(visits_per_year * 3 + rng.randint(-1, 2)):
            self.gp_visit(self._day(HISTORY_DAYS))
        if ctx.chronic:
            self.chronic_refills()
        if ctx.adult and rng.random() < 0.35:
            self.specialist_visit(self._day(HISTORY_DAYS))
        if ctx.age >= 65 and rng.random() < 0.6:
            self.flu_vaccine()
        elif ctx.age < 16 and rng.random() < 0.6:
            day = self._day(HISTORY_DAYS)
            self.document(
                "11369-6",
                day,
                self._staff("pediatrics"),
                ["Vaccinations à jour selon le calendrier vaccinal."],
            )
        if ctx.age >= 70 and rng.random() < 0.25:
            self.sessions(
                self._day(EXTRACT_DAYS), "nurse", rng.randint(3, 8), 2,
                lambda: [(NURSE_ACT, rng.randint(1, 3)), (NURSE_TRAVEL, 1)],
                "Soins infirmiers à domicile : pansements, surveillance.",
            )  # fmt: skip
        if ctx.adult and rng.random() < 0.1:
            self.sessions(
                self._day(EXTRACT_DAYS), "physio", rng.randint(2, 4), 7,
                lambda: [(PHYSIO_ACT, rng.randint(2, 3))],
                "Bilan de fin de rééducation : amélioration fonctionnelle.",
            )  # fmt: skip
        if rng.random() < 0.1:
            self.hospital_stay(self._day(HISTORY_DAYS))
        if ctx.gender == "female" and 20 <= ctx.age <= 42 and rng.random() < 0.06:
            author = self._staff(rng.choice(("midwife", "gynecology")))
            self.document(
                "15508-5",
                self._day(HISTORY_DAYS),
                author,
                ["Accouchement par voie basse, sans complication."],
            )
        if 20 <= ctx.age <= 64 and rng.random() < 0.08:
            self.document(
                "11488-4",
                self._day(HISTORY_DAYS),
                self._staff("occupational"),
                ["Visite d'information et de prévention.", "Pas de contre-indication au poste."],
            )
        if rng.random() < (0.7 if ctx.chronic else 0.3):
            body = [
                "Synthèse des antécédents, traitements et allergies.",
                *(f"Traitement : {d.label}" for d in ctx.chronic),
            ]
            self.document("60591-5", self._day(EXTRACT_DAYS), ctx.gp, body)
        if ctx.chronic and rng.random() < 0.05:
            self.document(
                "18776-5",
                self._day(HISTORY_DAYS),
                ctx.gp,
                ["Plan personnalisé de soins coordonné avec l'infirmier."],
            )
        if rng.random() < 0.05:
            self.document(
                "29274-8",
                self._day(EXTRACT_DAYS),
                self._staff("nurse"),
                [
                    f"Tension artérielle {rng.randint(11, 15)}/{rng.randint(6, 9)}, pouls {rng.randint(58, 90)}/min."
                ],
            )

    def gp_visit(self, day: date) -> None:
        ctx, rng = self.ctx, self.rng
        gp = ctx.gp if rng.random() < 0.9 else self._staff("gp")
        home = ctx.age >= 80 and rng.random() < 0.3
        acts = [(HOME_VISIT, 1), (TRAVEL, 1)] if home else [(GP_VISIT, 1)]
        self.invoice(day, gp, None, acts, VISIT_DEDUCTION)
        if rng.random() < 0.3:
            masked = ctx.age >= 15 and rng.random() < 0.08
            reason = rng.choice(MASKED_REASONS[ctx.gender] if masked else CONSULTATION_REASONS)
            doc = self.document("11488-4", day, gp, [f"Motif : {reason}.", rng.choice(FINDINGS)])
            if masked:
                doc.labels.append("MASQUE_PS")
            elif 12 <= ctx.age < 18 and rng.random() < 0.3:
                doc.labels.append("INVISIBLE_REPRESENTANTS_LEGAUX")
        if rng.random() < 0.5:
            self.prescription(day, gp)
        if rng.random() < 0.25:
            self.blood_test(day + timedelta(days=rng.randint(0, 7)), gp)
        if rng.random() < 0.08:
            self.imaging(day + timedelta(days=rng.randint(1, 14)), gp)

    def prescription(self, day: date, prescriber: Professional) -> None:
        rng = self.rng
        drugs = rng.sample([d for d in DRUGS if not d.chronic], rng.randint(1, 2))
        if rng.random() < 0.2:
            self.document("57833-6", day, prescriber, [f"{d.label} : {d.dosage}" for d in drugs])
        self.pharmacy(day + timedelta(days=rng.randint(0, 2)), prescriber, drugs)

    def pharmacy(
        self, day: date, prescriber: Professional, drugs: list[Drug], extra: tuple[Act, ...] = ()
    ) -> None:
        """A dispensing at the city's pharmacy: one line per drug (boxes), plus devices."""
        rng, full = self.rng, self.ctx.ald
        acts = [
            (Act("CIP13", d.cip13, d.label, d.cents, 100 if full and d.chronic else d.rate), 1) for d in drugs
        ]
        acts += [(a, 1) for a in extra]
        self.invoice(day, self._org("pharmacy"), prescriber, acts, BOX_DEDUCTION, per_box=True)
        if rng.random() < 0.05:
            self.document("60593-1", day, self._staff("pharmacist"), [f"Délivré : {d.label}" for d in drugs])

    def chronic_refills(self) -> None:
        """A monthly dispensing of the long-term treatment over the extract's window."""
        ctx, rng = self.ctx, self.rng
        diabetic = any(d.label.startswith(("Metformine", "Insuline")) for d in ctx.chronic)
        start = rng.randint(1, 30)
        for month in range(12):
            day = ctx.as_of - timedelta(days=start + 30 * month)
            strips = (GLUCOSE_STRIPS,) if diabetic and month % 3 == 0 else ()
            self.pharmacy(day, ctx.gp, ctx.chronic, strips)

    def flu_vaccine(self) -> None:
        as_of = self.ctx.as_of
        autumn = date(as_of.year if as_of.month >= 11 else as_of.year - 1, 10, 15)
        day = autumn + timedelta(days=self.rng.randint(0, 40))
        if day >= as_of:
            return
        self.invoice(day, self._org("pharmacy"), None, [(FLU_VACCINE, 1)])
        self.document(
            "11369-6",
            day,
            self._staff("pharmacist"),
            ["Vaccination antigrippale saisonnière réalisée en officine."],
        )

    def blood_test(self, day: date, prescriber: Professional) -> None:
        rng = self.rng
        tests = rng.sample(BIOLOGY[1:], rng.randint(2, 5))
        self.invoice(
            day, self._org("lab"), prescriber, [(BIOLOGY[0], 1), *((t, 1) for t in tests)], VISIT_DEDUCTION
        )
        if rng.random() < 0.8:
            results = [f"{t.label} : dans les valeurs de référence." for t in tests]
            self.document("11502-2", day + timedelta(days=1), self._staff("biology"), results)

    def imaging(self, day: date, prescriber: Professional) -> None:
        rng = self.rng
        exam = (
            IMAGING[1]
            if self.ctx.gender == "female" and self.ctx.age >= 50 and rng.random() < 0.5
            else rng.choice(IMAGING)
        )
        radiologist = self._staff("radiology")
        self.invoice(day, radiologist, prescriber, [(exam, 1)], VISIT_DEDUCTION)
        if rng.random() < 0.9:
            self.document(
                "18748-4",
                day,
                radiologist,
                [f"{exam.label}.", "Conclusion : examen sans anomalie décelable."],
            )

    def specialist_visit(self, day: date) -> None:
        ctx, rng = self.ctx, self.rng
        choices = ["cardiology", "dermatology", "ophthalmology"] + (
            ["gynecology"] if ctx.gender == "female" else []
        )
        specialist = self._staff(rng.choice(choices))
        self.invoice(day, specialist, None, [(SPECIALIST_VISIT, 1)], VISIT_DEDUCTION)
        if rng.random() < 0.7:
            self.document(
                "11488-4", day, specialist, [f"Avis demandé par {ctx.gp.name}.", rng.choice(FINDINGS)]
            )
        if specialist.key == "dermatology" and rng.random() < 0.3:
            self.document(
                "11505-5", day, specialist, ["Exérèse d'une lésion cutanée sous anesthésie locale."]
            )
            later = day + timedelta(days=rng.randint(7, 20))
            report = self.document(
                "11526-1", later, self._staff("pathology"), ["Examen histologique de la pièce d'exérèse."]
            )
            if rng.random() < 0.3:
                # Not shown to the patient before the announcement consultation.
                report.labels.append("INVISIBLE_PATIENT")
        if rng.random() < 0.5:
            follow_up = day + timedelta(days=rng.randint(30, 120))
            self.invoice(follow_up, specialist, None, [(SPECIALIST_FOLLOW_UP, 1)], VISIT_DEDUCTION)

    def sessions(
        self,
        start: date,
        key: str,
        count: int,
        every: int,
        acts: Callable[[], list[tuple[Act, int]]],
        report: str,
    ) -> None:
        """A series of ``count`` sessions by one auxiliary (nurse, physiotherapist), every ``every``
        days, prescribed by the GP; sometimes closed by a follow-up report."""
        professional = self._staff(key)
        for n in range(count):
            self.invoice(start + timedelta(days=every * n), professional, self.ctx.gp, acts())
        if self.rng.random() < 0.4:
            self.document("11506-3", start + timedelta(days=every * count), professional, [report])

    def hospital_stay(self, day: date) -> None:
        """An emergency visit, sometimes followed by surgery and a stay (billed by the hospital, outside
        the extract's nomenclatures)."""
        rng = self.rng
        self.document(
            "15507-7", day, self._staff("emergency"), ["Admission aux urgences.", rng.choice(FINDINGS)]
        )
        if rng.random() < 0.4:
            surgeon = (
                self._staff("gynecology")
                if self.ctx.gender == "female" and rng.random() < 0.3
                else self._staff("emergency")
            )
            self.document(
                "34874-8", day + timedelta(days=1), surgeon, ["Intervention réalisée sans incident."]
            )
            if rng.random() < 0.2:
                self.document(
                    "18761-7", day + timedelta(days=3), surgeon, ["Transfert en service de soins de suite."]
                )
            self.document(
                "11490-0",
                day + timedelta(days=rng.randint(2, 8)),
                surgeon,
                ["Sortie à domicile.", "Suivi par le médecin traitant."],
            )
