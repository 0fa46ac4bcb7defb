"""Realistic Salvadoran patients for the demo clinic and the benchmark: names, phones, emails, DUIs."""

import random
import unicodedata

FIRST = [
    "José",
    "María",
    "Juan",
    "Ana",
    "Carlos",
    "Rosa",
    "Luis",
    "Carmen",
    "Jorge",
    "Gloria",
    "Mario",
    "Sofía",
    "Óscar",
    "Lucía",
    "Raúl",
    "Marta",
    "Andrés",
    "Beatriz",
    "René",
    "Elena",
    "Héctor",
    "Verónica",
    "Rubén",
    "Patricia",
    "Iván",
    "Mónica",
    "Ángel",
    "Noemí",
    "Julián",
    "Inés",
    "Sebastián",
    "Dolores",
    "Tomás",
    "Leticia",
    "Nicolás",
    "Araceli",
    "Efraín",
    "Yésica",
    "Germán",
    "Marisol",
    "Álvaro",
    "Rocío",
    "Fernando",
    "Guadalupe",
    "Ramón",
    "Teresa",
    "Sergio",
    "Daniela",
    "Víctor",
    "Xiomara",
    "Miguel",
    "Fátima",
    "Ricardo",
    "Karla",
]
LAST = [
    "Hernández",
    "López",
    "Martínez",
    "García",
    "Rodríguez",
    "Pérez",
    "Ramírez",
    "Flores",
    "Rivera",
    "Gómez",
    "Cruz",
    "Sánchez",
    "Díaz",
    "Romero",
    "Mejía",
    "Alvarado",
    "Guzmán",
    "Vásquez",
    "Ayala",
    "Menjívar",
    "Quintanilla",
    "Argueta",
    "Chávez",
    "Núñez",
    "Peña",
    "Orellana",
    "Escobar",
    "Castillo",
    "Aguilar",
    "Ortiz",
    "Molina",
    "Rosales",
    "Portillo",
    "Henríquez",
    "Zelaya",
    "Bonilla",
    "Cañas",
    "Domínguez",
    "Echeverría",
    "Fuentes",
    "Iraheta",
    "Joya",
    "Lemus",
    "Marroquín",
    "Navarrete",
    "Ochoa",
    "Pineda",
    "Ríos",
    "Serrano",
    "Umaña",
    "Valladares",
    "Zepeda",
    "Muñoz",
    "Ibáñez",
    "Beltrán",
    "Galdámez",
    "Cerén",
    "Ascencio",
    "Funes",
]
DOMAINS = ("gmail.com", "hotmail.com", "yahoo.com", "outlook.com", "salud.sv")
SPECIALTIES = ("Medicina general", "Pediatría", "Ginecología", "Odontología", "Dermatología")
STATUSES = ("completed", "completed", "confirmed", "pending", "cancelled", "no_show")


def ascii_fold(text: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    ).lower()


def dui(rng: random.Random) -> str:
    digits = [rng.randrange(10) for _ in range(8)]
    check = (10 - sum(d * (9 - i) for i, d in enumerate(digits)) % 10) % 10
    return "".join(map(str, digits)) + f"-{check}"


def patient(rng: random.Random, serial: int) -> dict:
    """One patient; `serial` keeps phones unique within a data set (up to 10 million)."""
    first, last1, last2 = rng.choice(FIRST), rng.choice(LAST), rng.choice(LAST)
    full_name = f"{first} {last1} {last2}"
    prefix = "7" if serial % 3 else "6"
    phone = f"+503{prefix}{serial % 10_000_000:07d}"
    email = None
    if rng.random() < 0.7:
        email = f"{ascii_fold(first)}.{ascii_fold(last1)}{serial}@{rng.choice(DOMAINS)}"
    return {"full_name": full_name, "phone": phone, "email": email, "dui": dui(rng)}


def patient_copy_row(
    rng: random.Random, keys, clinic_id: str, patient_id: str, p: dict, created
) -> tuple:
    """`p` as one row of queries.copy_patients_in (its column order), the DUI encrypted for it."""
    ciphertext, key_id = keys.encrypt(clinic_id, patient_id, p["dui"])
    no_shows = rng.choice((0, 0, 0, 1, 2))
    return (
        patient_id,
        clinic_id,
        p["full_name"],
        p["phone"],
        p["email"],
        ciphertext,
        key_id,
        no_shows,
        created,
    )


def doctor(rng: random.Random) -> dict:
    title = rng.choice(("Dr.", "Dra."))
    return {
        "full_name": f"{title} {rng.choice(FIRST)} {rng.choice(LAST)}",
        "specialty": rng.choice(SPECIALTIES),
    }


# The patients the README's examples show, added to the demo clinic once (and to a demo clinic
# made before they existed): Juan Pérez is `$PATIENT_ID` and what `search=7765-4321` finds;
# Rosa is what `blocked=true` finds. The generated phones (+5037000…, +5036000…) never clash.
SHOWCASE = (
    {
        "full_name": "Juan Pérez",
        "phone": "+50377654321",
        "email": "juan.perez@example.com",
        "dui": "04561237-8",
        "notes": "Alérgico a la penicilina.",
        "no_show_count": 1,
        "is_blocked": False,
        # (days from today, start, status, with the clinic's first doctor?)
        "appointments": (
            (-60, "08:40", "completed", True),
            (-14, "10:20", "no_show", True),
            (21, "09:00", "confirmed", False),
        ),
    },
    {
        "full_name": "Rosa Quintanilla Menjívar",
        "phone": "+50361234567",
        "email": None,
        "dui": None,
        "notes": "Bloqueada: mensajes ofensivos al chatbot.",
        "no_show_count": 0,
        "is_blocked": True,
        "appointments": (),
    },
)
# The demo clinic's WhatsApp number id: the `phone_number_id` of the README's webhook delivery.
WHATSAPP_NUMBER_ID = "100000000000001"
