"""Data behind the synthetic French DMP (:mod:`fhir_server.dmp.demo`): names, places, professions,
document types, nomenclature acts and drugs.

Everything here is illustrative. Place codes (INSEE commune codes, postal codes), profession and
specialty codes (TRE_G15, TRE_R38) and document codes (LOINC, TRE_A03) are the real ones; the act,
biology and drug codes have the shape of the real nomenclatures (CCAM, NGAP, NABM, CIP13 with a valid
EAN-13 check digit, LPP) but their prices and rates are rounded examples, not a tariff.
"""

from __future__ import annotations

from typing import NamedTuple

# -- people ------------------------------------------------------------------------------------------

FAMILY_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
    "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
    "Morel", "Girard", "André", "Lefèbvre", "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez",
    "Légaré", "Ménard", "Hébert", "Gérard", "Rivière", "Lemaître", "Noël", "Benoît", "Chevalier", "Brûlé",
    "Garçon", "Françon", "Besançon", "Boëdec", "Le Goff", "Le Bihan", "Kerhervé", "Guégan", "Thérèse",
    "Da Silva", "Dos Santos", "Nguyen", "Benali", "Haddad", "Hoarau", "Payet", "Grondin", "Santoni",
    "Pietri", "Casanova", "Jean-Baptiste", "Delétang", "Crémieux", "Géraud", "Faÿ", "Duchâteau", "Lacôte",
)  # fmt: skip
GIVEN_NAMES = {
    "female": (
        "Hélène", "Léa", "Chloé", "Zoé", "Anaïs", "Maëlle", "Noémie", "Éloïse", "Cécile", "Agnès", "Inès",
        "Océane", "Amélie", "Clémence", "Mélanie", "Françoise", "Noëlle", "Gaëlle", "Bénédicte", "Maïwenn",
        "Jeanne", "Louise", "Camille", "Manon", "Margaux", "Élodie", "Geneviève", "Thérèse", "Sévérine",
        "Marie-Hélène", "Anne-Sophie", "Joëlle", "Héloïse", "Célia", "Aurélie", "Ginette", "Solène",
    ),
    "male": (
        "François", "Noël", "Jérôme", "Loïc", "Raphaël", "Clément", "Gaël", "Théo", "Hervé", "Benoît",
        "Grégoire", "Joël", "Stéphane", "Frédéric", "Sébastien", "André", "René", "Rémi", "Aurélien",
        "Jean-Noël", "Jean-François", "Léo", "Mathéo", "Anthony", "Cédric", "Gérard", "Marcel", "Hugues",
        "Maël", "Eliès", "Timothée", "Adrien", "Jacques", "Pierre-Yves", "Valéry", "Anaël",
    ),
}  # fmt: skip
STREETS = (
    "rue de la République", "avenue Jean-Jaurès", "place de l'Église", "rue du Château", "boulevard Gambetta",
    "chemin des Écoliers", "rue Émile-Zola", "allée des Frênes", "rue Pasteur", "impasse des Mûriers",
    "avenue du Général-de-Gaulle", "rue Victor-Hugo", "quai de la Loire", "rue de l'Hôtel-de-Ville",
    "route de Besançon", "rue des Prés-Fleuris", "cours Lafayette", "rue Sainte-Cécile",
)  # fmt: skip


class City(NamedTuple):
    """A commune: name, a postal code, its INSEE code (département + commune, the NIR's birthplace)."""

    name: str
    postal: str
    insee: str


# Where patients live and professionals work, most populous first: a small data set uses the first few.
CITIES = (
    City("Paris", "75012", "75112"), City("Marseille", "13005", "13205"), City("Lyon", "69003", "69383"),
    City("Toulouse", "31000", "31555"), City("Nice", "06000", "06088"), City("Nantes", "44000", "44109"),
    City("Montpellier", "34000", "34172"), City("Strasbourg", "67000", "67482"),
    City("Bordeaux", "33000", "33063"), City("Lille", "59000", "59350"), City("Rennes", "35000", "35238"),
    City("Reims", "51100", "51454"), City("Saint-Étienne", "42000", "42218"),
    City("Toulon", "83000", "83137"), City("Le Havre", "76600", "76351"), City("Grenoble", "38000", "38185"),
    City("Dijon", "21000", "21231"), City("Angers", "49000", "49007"), City("Nîmes", "30000", "30189"),
    City("Saint-Denis", "97400", "97411"), City("Clermont-Ferrand", "63000", "63113"),
    City("Brest", "29200", "29019"), City("Limoges", "87000", "87085"), City("Tours", "37000", "37261"),
    City("Amiens", "80000", "80021"), City("Metz", "57000", "57463"), City("Besançon", "25000", "25056"),
    City("Perpignan", "66000", "66136"), City("Orléans", "45000", "45234"), City("Rouen", "76000", "76540"),
    City("Caen", "14000", "14118"), City("Nancy", "54000", "54395"), City("Ajaccio", "20000", "2A004"),
    City("Fort-de-France", "97200", "97209"), City("Pau", "64000", "64445"),
    City("La Rochelle", "17000", "17300"), City("Bastia", "20200", "2B033"),
    City("Pointe-à-Pitre", "97110", "97120"), City("Annecy", "74000", "74010"),
    City("Poitiers", "86000", "86194"), City("Avignon", "84000", "84007"), City("Cayenne", "97300", "97302"),
    City("Quimper", "29000", "29232"), City("Mamoudzou", "97600", "97611"), City("Vannes", "56000", "56260"),
)  # fmt: skip
CORSICA = tuple(c for c in CITIES if c.insee[:2] in ("2A", "2B"))
OVERSEAS = tuple(c for c in CITIES if c.insee.startswith("97"))
MAINLAND = tuple(c for c in CITIES if c not in CORSICA and c not in OVERSEAS)
# Born abroad: département 99 and the INSEE country code in place of the commune.
ABROAD = (
    ("Maroc", "99350"), ("Algérie", "99352"), ("Tunisie", "99351"), ("Portugal", "99139"),
    ("Espagne", "99134"), ("Italie", "99127"), ("Allemagne", "99109"), ("Belgique", "99131"),
    ("Sénégal", "99341"), ("Viêt Nam", "99243"),
)  # fmt: skip
# Where a patient was born, relative to where they live: (same département, elsewhere on the mainland,
# Corsica, overseas, abroad). Corsica and overseas are over-weighted so that small sets show them.
BIRTHPLACE_WEIGHTS = (60, 20, 5, 7, 8)

# -- creation channels (DOMAIN.md: shares published at 5 M DMPs) ------------------------------------

CHANNEL_SHARES = (
    ("patient-web", "Le patient en ligne", 19),
    ("pharmacie", "Une pharmacie", 31),
    ("cpam", "Un accueil de CPAM", 32),
    ("professionnel-sante", "Un professionnel de santé", 18),
)

# -- professionals and organizations ----------------------------------------------------------------

PROFESSIONS = {
    "10": "Médecin", "21": "Pharmacien", "40": "Chirurgien-dentiste", "50": "Sage-femme",
    "60": "Infirmier", "70": "Masseur-kinésithérapeute",
}  # fmt: skip
SPECIALTIES = {
    "SM26": "Qualifié en Médecine générale", "SM04": "Cardiologie et Maladies vasculaires",
    "SM44": "Radio-diagnostic", "SM03": "Biologie médicale", "SM40": "Pédiatrie",
    "SM20": "Gynécologie-obstétrique", "SM15": "Dermatologie et Vénéréologie", "SM38": "Ophtalmologie",
    "SM59": "Médecine d'urgence", "SM25": "Médecine du travail", "SM01": "Anatomie et Cytologie pathologiques",
}  # fmt: skip


class Staff(NamedTuple):
    """A kind of professional every city has: key, profession, specialty, where they work, how many."""

    key: str
    profession: str
    specialty: str | None
    workplace: str
    count: int


STAFF = (
    Staff("gp", "10", "SM26", "msp", 3),
    Staff("cardiology", "10", "SM04", "hospital", 1),
    Staff("radiology", "10", "SM44", "imaging", 1),
    Staff("biology", "10", "SM03", "lab", 1),
    Staff("pediatrics", "10", "SM40", "msp", 1),
    Staff("gynecology", "10", "SM20", "hospital", 1),
    Staff("dermatology", "10", "SM15", "msp", 1),
    Staff("ophthalmology", "10", "SM38", "hospital", 1),
    Staff("emergency", "10", "SM59", "hospital", 1),
    Staff("occupational", "10", "SM25", "occupational", 1),
    Staff("pathology", "10", "SM01", "hospital", 1),
    Staff("pharmacist", "21", None, "pharmacy", 2),
    Staff("nurse", "60", None, "msp", 2),
    Staff("physio", "70", None, "msp", 1),
    Staff("midwife", "50", None, "hospital", 1),
    Staff("dentist", "40", None, "msp", 1),
)
WORKPLACES = {
    "hospital": "Centre hospitalier de {city}",
    "msp": "Maison de santé pluriprofessionnelle de {city}",
    "lab": "Laboratoire de biologie médicale de {city}",
    "imaging": "Cabinet d'imagerie médicale de {city}",
    "pharmacy": "Pharmacie de la Gare, {city}",
    "occupational": "Service de prévention et de santé au travail de {city}",
}

# -- documents ---------------------------------------------------------------------------------------

CLASSES = {
    "10": "Compte rendu", "11": "Synthèse", "31": "Imagerie médicale", "42": "Prescription",
    "43": "Dispensation", "44": "Plan/protocole de soins", "45": "Traitement administré",
}  # fmt: skip


class DocType(NamedTuple):
    """A DMP document type (LOINC), its class (TRE_A03, ours: the class follows from the type) and how
    its content is shipped (a CDA R2 XML document or a PDF)."""

    label: str
    class_code: str
    cda: bool


DOC_TYPES = {
    "11488-4": DocType("Compte rendu de consultation", "10", False),
    "11490-0": DocType("Lettre de liaison à la sortie d'un établissement de soins", "10", False),
    "11502-2": DocType("Compte rendu d'examens biologiques", "10", True),
    "11505-5": DocType("Compte rendu d'acte thérapeutique", "10", False),
    "11506-3": DocType("Compte rendu de suivi de soins par auxiliaire médical", "10", False),
    "11526-1": DocType("Compte rendu d'anatomie et de cytologie pathologiques", "10", False),
    "18748-4": DocType("Compte rendu d'imagerie médicale", "31", False),
    "15507-7": DocType("Compte rendu de passage aux urgences", "10", False),
    "15508-5": DocType("Compte rendu d'accouchement", "10", False),
    "18761-7": DocType("Note de transfert", "10", False),
    "18776-5": DocType("Plan personnalisé de soins", "44", False),
    "11369-6": DocType("Historique des vaccinations", "11", True),
    "29274-8": DocType("Mesures de signes vitaux", "10", True),
    "60591-5": DocType("Volet de synthèse médicale", "11", True),
    "57833-6": DocType("Prescription de produits de santé", "42", True),
    "60593-1": DocType("Dispensation de médicaments", "43", True),
    "34874-8": DocType("Compte rendu opératoire", "10", False),
}
CONSULTATION_REASONS = (
    "suivi d'une hypertension artérielle", "bilan annuel", "douleurs lombaires", "toux persistante",
    "renouvellement de traitement", "fatigue et perte d'appétit", "éruption cutanée", "vertiges",
    "suivi du diabète de type 2", "certificat de non-contre-indication au sport", "angine", "gastro-entérite",
)  # fmt: skip
FINDINGS = (
    "Examen clinique sans particularité.", "Tension artérielle à 13/8.", "Auscultation cardio-pulmonaire normale.",
    "Abdomen souple, indolore.", "Pas de signe de gravité.", "Apyrétique.", "Bilan biologique à prévoir.",
)  # fmt: skip
# Reasons a patient would rather hide a consultation from other professionals (MASQUE_PS).
MASKED_REASONS = {
    "male": ("consultation de psychiatrie", "dépistage d'infection sexuellement transmissible", "suivi d'addictologie"),
    "female": (
        "consultation de psychiatrie", "dépistage d'infection sexuellement transmissible", "suivi d'addictologie",
        "interruption volontaire de grossesse",
    ),
}  # fmt: skip

# -- care and reimbursements -------------------------------------------------------------------------


class Act(NamedTuple):
    """A billable act or product: code system of the extract, code, label, price in cents, AMO rate (%)."""

    system: str
    code: str
    label: str
    cents: int
    rate: int


GP_VISIT = Act("NGAP", "G", "Consultation de médecine générale", 3000, 70)
HOME_VISIT = Act("NGAP", "VG", "Visite à domicile de médecine générale", 3000, 70)
TRAVEL = Act("NGAP", "MD", "Majoration de déplacement pour visite à domicile", 1000, 70)
SPECIALIST_VISIT = Act("NGAP", "APC", "Avis ponctuel de consultant", 6000, 70)
SPECIALIST_FOLLOW_UP = Act("NGAP", "CS", "Consultation de spécialiste", 3000, 70)
NURSE_ACT = Act("NGAP", "AMI", "Acte infirmier (AMI 1)", 315, 60)
NURSE_TRAVEL = Act("NGAP", "IFD", "Indemnité forfaitaire de déplacement", 275, 60)
PHYSIO_ACT = Act("NGAP", "AMK", "Séance de rééducation (AMK 7,5)", 1620, 60)
IMAGING = (
    Act("CCAM", "ZBQK002", "Radiographie du thorax", 2128, 70),
    Act("CCAM", "QEQK004", "Mammographie bilatérale", 6642, 70),
    Act("CCAM", "ZCQM005", "Échographie transcutanée de l'abdomen", 5670, 70),
    Act("CCAM", "NFQK003", "Radiographie du genou", 3325, 70),
    Act("CCAM", "LHQK001", "Radiographie du rachis lombaire", 3990, 70),
    Act("CCAM", "ACQK001", "Scanographie du crâne", 2527, 70),
)
BIOLOGY = (
    Act("NABM", "9105", "Forfait de prise en charge pré-analytique", 135, 60),
    Act("NABM", "1104", "Hémogramme y compris plaquettes", 756, 60),
    Act("NABM", "0552", "Glucose (glycémie)", 135, 60),
    Act("NABM", "0592", "Créatinine", 162, 60),
    Act("NABM", "0996", "Exploration d'une anomalie lipidique", 540, 60),
    Act("NABM", "1208", "Thyréostimuline (TSH)", 567, 60),
    Act("NABM", "1577", "Hémoglobine glyquée (HbA1c)", 756, 60),
    Act("NABM", "1804", "Protéine C réactive (CRP)", 270, 60),
    Act("NABM", "1610", "Ferritine", 540, 60),
)


class Drug(NamedTuple):
    """A drug box (CIP13), its price in cents, AMO rate (%), whether it is a long-term treatment, and how
    it is taken (for MedicationStatement.dosage)."""

    cip13: str
    label: str
    cents: int
    rate: int
    chronic: bool
    dosage: str


DRUGS = (
    Drug("3400930079195", "Metformine 1000 mg, comprimé, boîte de 30", 310, 65, True, "1 comprimé matin et soir"),
    Drug("3400930158388", "Lévothyroxine sodique 75 µg, comprimé, boîte de 30", 227, 65, True, "1 comprimé le matin à jeun"),
    Drug("3400930237571", "Atorvastatine 20 mg, comprimé, boîte de 30", 706, 65, True, "1 comprimé le soir"),
    Drug("3400930316764", "Amlodipine 5 mg, gélule, boîte de 30", 378, 65, True, "1 gélule par jour"),
    Drug("3400930395950", "Ramipril 5 mg, comprimé, boîte de 30", 418, 65, True, "1 comprimé par jour"),
    Drug("3400930475140", "Bisoprolol 5 mg, comprimé, boîte de 30", 350, 65, True, "1 comprimé le matin"),
    Drug("3400930554333", "Oméprazole 20 mg, gélule, boîte de 28", 404, 65, True, "1 gélule le soir"),
    Drug("3400930633526", "Salbutamol 100 µg/dose, suspension pour inhalation", 428, 65, True, "2 bouffées si besoin"),
    Drug("3400930712719", "Escitalopram 10 mg, comprimé, boîte de 28", 809, 65, True, "1 comprimé par jour"),
    Drug("3400930791905", "Apixaban 5 mg, comprimé, boîte de 60", 5000, 65, True, "1 comprimé matin et soir"),
    Drug("3400930871096", "Insuline glargine 100 U/ml, 5 stylos préremplis", 4900, 100, True, "20 unités le soir"),
    Drug("3400930950289", "Paracétamol 1000 mg, comprimé, boîte de 8", 116, 65, False, "1 comprimé jusqu'à 3 fois par jour"),
    Drug("3400931029472", "Amoxicilline 1 g, comprimé, boîte de 6", 304, 65, False, "1 comprimé 3 fois par jour pendant 7 jours"),
    Drug("3400931108665", "Ibuprofène 400 mg, comprimé, boîte de 30", 208, 65, False, "1 comprimé 3 fois par jour au repas"),
    Drug("3400931187851", "Amoxicilline/acide clavulanique 1 g/125 mg, sachet, boîte de 8", 586, 65, False, "1 sachet matin et soir"),
    Drug("3400931267041", "Prednisolone 20 mg, comprimé orodispersible, boîte de 20", 325, 65, False, "2 comprimés le matin pendant 5 jours"),
    Drug("3400931346234", "Desloratadine 5 mg, comprimé, boîte de 30", 449, 30, False, "1 comprimé par jour"),
    Drug("3400931425427", "Phloroglucinol 80 mg, comprimé orodispersible, boîte de 10", 248, 30, False, "2 comprimés en cas de douleur"),
)  # fmt: skip
GLUCOSE_STRIPS = Act("LPP", "1150999", "Bandelettes d'autosurveillance glycémique, boîte de 50", 1590, 60)
FLU_VACCINE = Act("CIP13", "3400931504610", "Vaccin grippal quadrivalent, seringue préremplie", 1060, 100)


class Allergen(NamedTuple):
    """An allergy: what (text), its AllergyIntolerance.category, and a usual reaction."""

    text: str
    category: str
    reaction: str


ALLERGENS = (
    Allergen("Pénicillines", "medication", "Urticaire généralisée"),
    Allergen("Aspirine", "medication", "Bronchospasme"),
    Allergen("Produits de contraste iodés", "medication", "Éruption cutanée"),
    Allergen("Arachide", "food", "Œdème de Quincke"),
    Allergen("Fruits à coque", "food", "Prurit buccal"),
    Allergen("Lait de vache", "food", "Troubles digestifs"),
    Allergen("Œuf", "food", "Urticaire"),
    Allergen("Pollen de bouleau", "environment", "Rhinite saisonnière"),
    Allergen("Acariens", "environment", "Asthme"),
    Allergen("Latex", "environment", "Eczéma de contact"),
    Allergen("Venin de guêpe", "environment", "Réaction locale étendue"),
)
