"""The composite families' FINAL domains: the split for the final table, run once, never tuned on.

Written on 2026-12-08 (issue 27; commit 4e490c7, 04:00 UTC, one wording edited in 77443d5),
after both held-out domains of every family had been run twice and so no longer counted as
unseen. NOT RUN: no model had seen these tasks when they were written, and none may before the
final table, their first and only run (docs/benchmarks.md, "The final split", records when
that is). Pure data, read by
`composite_tasks.py` (split "final", seeds from 200_000), in the same spec format as
`domains_dev.py` and `domains_heldout.py`; every subject, record format and wording differs
from theirs.

Final domains, one per family: a hospital ward's shift notes (`key: value` blocks), a bike-
sharing fleet's service log (JSON lines), a restaurant chain's hygiene inspections (tab-
separated with a header), a shipping line's container bookings with container events (two
record lists: semicolon-separated bookings, tab-separated events), a wind farm's daily turbine
reports (logfmt `key=value`), a school trust's incident book (a directory of files).
"""

from __future__ import annotations

PATIENTS = (
    "Agnes Mensah", "Brian Kowalczyk", "Carmen Ortiz", "Derek Whitlow", "Elif Yildiz",
    "Frank Doherty", "Grace Achterberg", "Harold Finch", "Irene Castellano", "Joseph Mwangi",
    "Kathleen Rourke", "Lionel Abara", "Margaret Sze", "Norman Pryce",
)  # fmt: skip
WARD_NURSES = ("RN Okoye", "RN Delaney", "RN Haddad", "HCA Brooks", "RN Tanaka", "HCA Silva")
WARD_SLOTS = {
    "time": ("02:15", "03:40", "05:10", "14:20", "19:45", "22:30"),
    "limb": ("left elbow", "right knee", "forearm", "shin", "right hand"),
    "side": ("left", "right"),
    "drug": ("metformin", "ramipril", "furosemide", "the antibiotics", "warfarin", "laxatives"),
    "relative": ("Daughter", "Son", "Wife", "Husband", "Niece"),
    "score": ("2", "3", "4", "6"),
}
WARD_KINDS = {
    "fall": (
        "Found on the floor beside the bed at {time}, no obvious injury, obs stable.",
        "Slipped in the bathroom while walking unaided; small graze to the {limb}, doctor "
        "informed.",
        "Unwitnessed fall near the nurses' station at {time}; neuro obs started.",
        "Lost balance getting out of the chair and went down onto the {side} hip; X-ray requested.",
        "Had a fall on the way to the toilet at {time}, helped up by two staff, no injury found.",
        "Slid out of bed at {time}; bed rails now up and falls mat in place.",
    ),
    "refused_meds": (
        "Refused the {time} dose of {drug}, says it makes them feel sick.",
        "Would not take {drug} this evening, spat the tablets out; prescriber told.",
        "Declined {drug} again today, wants to speak to the doctor first.",
        "Medication round at {time}: {drug} refused, documented on the chart.",
        "Pushed the cup away when offered {drug}; will try again in an hour.",
    ),
    "routine": (
        "Settled night, slept well from {time}, obs within normal range.",
        "Ate most of breakfast, mobilising with a frame, {drug} given as charted.",
        "Pain score {score}/10 after physio, paracetamol given with good effect.",
        "Observations stable at {time}, drinking well, catheter draining clear urine.",
        "Washed and dressed with the assistance of one, sat out in the chair for lunch.",
        "Wound on the {limb} redressed, clean and dry.",
    ),
    "family": (
        "{relative} visited this afternoon and asked about discharge plans.",
        "{relative} phoned at {time} for an update, told the patient is comfortable.",
        "{relative} brought in clothes and glasses; would like to speak to the consultant.",
    ),
}
SETS_WARD = {
    "name": "ward",
    "entity": "patient",
    "entities": PATIENTS,
    "kinds": WARD_KINDS,
    "a": "fall",
    "b": "refused_meds",
    "slots": WARD_SLOTS,
    "speakers": WARD_NURSES,
    "kind_fields": {"shift": {kind: ("early", "late", "night") for kind in WARD_KINDS}},
    "format": "blocks",
    "columns": (
        ("date", "date"),
        ("shift", "shift"),
        ("patient", "entity"),
        ("by", "speaker"),
        ("note", "text"),
    ),  # fmt: skip
    "phrasings": (
        "Which patients had a fall and also refused their medication at some point?",
        "From the shift notes, give me every patient who both fell and turned down their meds.",
        "I need the names of patients with a recorded fall as well as a refused dose.",
    ),
}

BIKE_STATIONS = (
    "Union Square", "Canal Basin", "Museum Gate", "Hillcrest", "University East",
    "Brewery Yard", "Victoria Park",
)  # fmt: skip
BIKE_SLOTS = {
    "place": ("the bridge", "the station", "the hospital", "the campus"),
    "thing": ("a nail", "glass", "a thorn", "a staple"),
    "pct": ("40", "65", "80"),
    "mins": ("5", "10", "20"),
}
BIKE_KINDS = {
    "brakes": (
        "Rear brake barely bites, lever pulls back to the bar.",
        "Front brake squealing and weak on the hill down from {place}.",
        "Rider says the brakes failed at a crossing near {place}.",
        "Brake cable frayed, bike taken out of service.",
        "Brake pads worn down to the metal on both wheels.",
        "Back brake does nothing in the wet, says the rider.",
    ),
    "tyre": (
        "Flat front tyre, {thing} stuck in the tread.",
        "Rear tyre keeps losing pressure overnight.",
        "Tyre sidewall split, the wheel needs replacing.",
        "Slow puncture reported after a ride from {place}.",
    ),
    "battery": (
        "Battery shows {pct}% but the motor cuts out on hills.",
        "E-assist stops working after {mins} minutes of riding.",
        "Battery would not charge while docked.",
    ),
    "dock": (
        "Bike would not release from the dock, app showed an error.",
        "Lock did not engage on return; rider charged for an extra {mins} minutes.",
        "Dock screen frozen, bikes could not be hired for {mins} minutes.",
    ),
    "cosmetic": (
        "Basket bent, otherwise rideable.",
        "Saddle stuck at the lowest height and will not adjust.",
        "Bell missing, reported by a rider near {place}.",
        "Graffiti on the frame, cleaned on site.",
    ),
}
ARGMAX_BIKES = {
    "name": "bikes",
    "entity": "station",
    "entities": BIKE_STATIONS,
    "kinds": BIKE_KINDS,
    "target": "brakes",
    "attribute": "entity",  # a field of the record
    "values": BIKE_STATIONS,
    "slots": BIKE_SLOTS,
    "format": "jsonl",
    "columns": (("day", "date"), ("station", "entity"), ("issue", "text")),
    "phrasings": (
        "Which docking station had the most bikes reported with brake problems?",
        "Looking only at the brake faults, which station do they come from most often?",
        "Where are we getting the most brake complaints? Give me the station.",
    ),
}

RESTAURANT_BRANCHES = ("Camden", "Shoreditch", "Clapham", "Islington", "Greenwich", "Brixton")
HYGIENE_INSPECTORS = ("D. Mahmood", "L. Fairbairn", "S. Oduya", "T. Kaminski")
HYGIENE_SLOTS = {
    "equipment": ("dishwasher", "fryer", "ice machine", "walk-in fridge", "dough mixer"),
    "area": ("prep area", "bar", "pastry section", "wash-up area"),
    "cold": ("7", "8", "10", "12"),
    "hot": ("48", "55", "58"),
    "month": ("January", "February"),
}
HYGIENE_KINDS = {
    "pests": (
        "Mouse droppings found behind the {equipment}.",
        "Live cockroach seen near the {area}.",
        "Gnawed packaging in the dry store, signs of rodent activity.",
        "Fly screen torn, several flies over the {area}.",
        "Pest control log not signed since {month}; droppings under the shelving.",
    ),
    "temperature": (
        "Walk-in fridge reading {cold}°C, above the 5°C limit.",
        "Hot holding at {hot}°C, below 63°C; food discarded.",
        "No temperature records kept for the {equipment} since {month}.",
        "Chilled desserts on the pass at {cold}°C for over an hour.",
    ),
    "cleaning": (
        "Grease build-up on the extractor hood above the {equipment}.",
        "Chopping boards in the {area} cracked and stained, replace.",
        "Dirty cloths left on the {area} counter.",
        "Mould on the seals of the {equipment}.",
    ),
    "handwashing": (
        "Hand-wash sink in the {area} blocked with boxes.",
        "No soap or paper towels at the {area} basin.",
        "Chef wearing a watch and rings while preparing food.",
    ),
    "compliant": (
        "All checks satisfactory, records up to date.",
        "Good standard throughout, {area} spotless.",
        "No issues found on this visit to the {area}.",
    ),
}
GROUPS_HYGIENE = {
    "name": "hygiene",
    "groups": RESTAURANT_BRANCHES,
    "group_field": "branch",
    "kinds": HYGIENE_KINDS,
    "target": "pests",
    "slots": HYGIENE_SLOTS,
    "speakers": HYGIENE_INSPECTORS,
    "format": "tsv",
    "columns": (
        ("ref", "id"),
        ("branch", "group"),
        ("visited", "date"),
        ("inspector", "speaker"),
        ("finding", "text"),
    ),  # fmt: skip
    "id_format": "HYG-{n:03d}",
    "phrasings": (
        "How many pest findings did each branch get?",
        "Break the pest problems down by branch: how many inspection findings at each?",
        "Per restaurant, count the findings that were about pests.",
    ),
}

CONSIGNEES = (
    "Baltic Timber", "Kessler Foods", "Olivares Wines", "Tanaka Electronics", "Mbeki Textiles",
    "Northgate Pharma", "Harlow Furniture", "Quayside Paper", "Lindqvist Steel", "Amara Spices",
)  # fmt: skip
CONTAINER_SLOTS = {
    "inland": ("Duisburg", "Lyon", "Milan", "Prague"),
    "temp": ("-18", "2", "4"),
    "hours": ("6", "12", "30"),
}
JOIN_CONTAINERS = {
    "name": "containers",
    "owners": CONSIGNEES,
    "owner_field": "consignee",
    "left_name": "bookings",
    "right_name": "events",
    "kinds": {
        "customs_hold": (
            "Held by customs for inspection, documents requested.",
            "Customs hold: commercial invoice missing.",
            "Selected for an X-ray scan by border force, release pending.",
            "Customs stop placed, import duty outstanding.",
            "Flagged by customs: the seal number does not match the manifest.",
        ),
        "other": (
            "Discharged from the vessel.",
            "Gated out full to the consignee's haulier.",
            "Loaded on rail to {inland}.",
            "Empty container returned to the depot.",
            "Reefer temperature alarm, set point {temp}°C.",
            "Vessel delayed {hours} hours by weather.",
            "Gate in full at the terminal.",
            "Seal checked and intact.",
            "Door hinge damaged, photographed at gate-in.",
            "Arrived at the {inland} inland terminal.",
        ),
    },
    "target": "customs_hold",
    "slots": CONTAINER_SLOTS,
    "key_format": "NRDU{n:05d}",
    "left_header": "CONTAINER;CONSIGNEE;ETA",
    "left_format": "{key};{owner};2026-03-{day:02d}",
    "right": "field",  # the container is a field of each event
    "format": "tsv",
    "columns": (("date", "date"), ("container", "key"), ("event", "text")),
    "phrasings": (
        "Which consignees have a container that customs held?",
        "List the consignees whose containers were stopped by customs at some point.",
        "Which of our customers had a box held up at customs?",
    ),
}

TURBINES = tuple(f"WTG-{n:02d}" for n in range(1, 13))
WIND_TECHNICIANS = ("Aled", "Morag", "Piet", "Signe", "Callum")
TURBINE_SLOTS = {
    "mw": ("1.2", "2.4", "3.1", "3.6"),
    "wind": ("6", "9", "11", "14"),
    "fault": ("gearbox oil temperature", "pitch system", "converter", "generator bearing", "yaw"),
    "time": ("02:10", "05:45", "13:30", "21:05"),
}
CHANGED_TURBINES = {
    "name": "turbines",
    "entity": "turbine",
    "entities": TURBINES,
    "kinds": {
        "running": (
            "generating normally, {mw} MW at {wind} m/s",
            "in service, no alarms",
            "running, 100% available over the last 24 h",
            "online and producing, yaw tracking fine",
            "operating normally since the {time} check",
        ),
        "fault": (
            "tripped on a {fault} alarm, not generating",
            "stopped: {fault} fault, waiting for a technician",
            "offline since {time} with a {fault} error",
            "down, the {fault} alarm will not reset remotely",
            "faulted out overnight, {fault} fault logged",
        ),
        "curtailed": (
            "curtailed to {mw} MW on the grid operator's instruction",
            "paused for bat protection in low wind",
            "limited for noise until 07:00",
        ),
        "maintenance": (
            "planned service in progress, locked out",
            "blade inspection by the rope team, stopped for the day",
        ),
    },
    "from": "running",
    "to": "fault",
    "dates": ("2026-03-04", "2026-03-11"),
    "slots": TURBINE_SLOTS,
    "speakers": WIND_TECHNICIANS,
    "format": "logfmt",
    "columns": (("date", "date"), ("turbine", "entity"), ("tech", "speaker"), ("status", "text")),
    "phrasings": (
        "Which turbines were running normally on 2026-03-04 but stopped on a fault on 2026-03-11?",
        "List the turbines that were generating in the March 4 report and down with a fault in "
        "the March 11 report.",
        "What turbines went from producing power (2026-03-04) to faulted (2026-03-11)?",
    ),
}

SCHOOL_SLOTS = {
    "year": ("2", "3", "4", "5", "6"),
    "place": ("hall", "library", "dining room", "Year 4 corridor", "playground"),
}
CORPUS_SCHOOLS = {
    "name": "incident-book",
    "authors": ("Mr Hale", "Ms Iqbal", "Mrs Dunne", "Mr Osei", "Ms Varga", "Mr Fenwick"),
    "sites": (
        "Oakfield Primary",
        "Kingsmead",
        "Brookside Academy",
        "Hilltop Juniors",
        "Castle Lane",
    ),
    "kinds": {
        "injury": (
            "A Year {year} pupil tripped in the {place} and grazed both knees; first aid given.",
            "Child bumped heads with another pupil during PE, cold compress, parents informed.",
            "Year {year} pupil cut a finger on scissors in the art room, plaster applied.",
            "Fell from the climbing frame at lunch, wrist swollen, parent took them to A&E.",
            "Pupil twisted an ankle on the stairs by the {place}.",
        ),
        "bullying": (
            "Year {year} pupil says a group in their class calls them names every day.",
            "Parent reports their child is being left out and pushed around at break by older "
            "pupils.",
            "Repeated unkind messages about a pupil in a class group chat, screenshots kept.",
            "Child's lunch taken by the same two pupils three days in a row.",
            "Pupil in Year {year} in tears, says others keep mocking their accent in the {place}.",
        ),
        "behaviour": (
            "Year {year} pupil refused to follow instructions and walked out of the lesson.",
            "Two pupils swore at a lunchtime supervisor in the {place}.",
            "Pupil threw a chair in the {place}; the class was moved out while they calmed down.",
        ),
        "property": (
            "Coat missing from the pegs outside the {place} after PE.",
            "Pupil's tablet found with a cracked screen in their bag.",
            "Window in the {place} broken by a football at break.",
        ),
    },
    "a": "injury",
    "b": "bullying",
    "slots": SCHOOL_SLOTS,
    "header": "School: {site}\nRecorded by: {author}\nDate: {date}\nEntry {n}",
    "path": "incident-book/{site}/{date}_{n:03d}.txt",
    "set_phrasings": (
        "Which staff members recorded both an injury and a bullying incident?",
        "Name the staff who logged at least one injury and, separately, at least one case of "
        "bullying.",
    ),
    "argmax_phrasings": (
        "Which school had the most injuries recorded?",
        "Where do most of the injury incidents happen? Tell me the school.",
        "Across the trust, which school's incident book has the most injuries?",
    ),
}

FINAL = {
    "sets": (SETS_WARD,),
    "argmax": (ARGMAX_BIKES,),
    "groups": (GROUPS_HYGIENE,),
    "join": (JOIN_CONTAINERS,),
    "changed": (CHANGED_TURBINES,),
    "files": (CORPUS_SCHOOLS,),
}
