"""The composite families' HELD-OUT domains: never used to tune anything.

Written before any tuning (issue 27), together with `domains_dev.py`; not run before the final
table (docs/benchmarks.md records when they first were). Pure data, read by
`composite_tasks.py`. Each domain has its own record format and wording, unlike the dev ones.

Held-out domains: product reviews (JSON lines), log lines (logfmt `key=value`), meeting notes
(CSV with a header), shop inventory counts (JSON lines), project status notes (CSV), a host
inventory with alert logs and a ticket list with meeting notes (two record lists each),
inspection report files and meeting minutes files (directories).
"""

from __future__ import annotations

REVIEWERS = (
    "kai_m", "lena.h", "omar_t", "rosa_v", "tomasz", "yuki88", "bilal_k", "carla.p", "dev_r",
    "eva_s", "femi_o", "greta_w", "hugo.b", "ines_f",
)  # fmt: skip
DEVICES = ("Nimbus X2", "Aura 5", "Vega Mini", "Orbit S", "Lumen 3")
REVIEW_SLOTS = {
    "hours": ("3", "5", "8", "10"),
    "pct": ("20", "30", "40"),
    "days": ("two days", "a week", "three weeks"),
}
REVIEW_KINDS = {
    "battery": (
        "Battery is down to {pct}% by lunchtime even with light use.",
        "It barely lasts {hours} hours on a full charge now.",
        "Battery life halved after the update {days} ago.",
        "Charges slowly and the battery drains overnight while idle.",
        "The battery swelled after {days} and pushed the back cover off.",
        "Dies at {pct}% without warning, the battery gauge is useless.",
    ),
    "screen": (
        "The screen cracked from a tiny drop {days} after I bought it.",
        "Dead pixels along the top edge of the display.",
        "The display flickers whenever brightness is under {pct}%.",
        "Touchscreen ignores taps in the bottom corner.",
        "Screen has a yellow tint and support says that is normal.",
        "A green line appeared down the middle of the display after {days}.",
    ),
    "praise": (
        "Camera is superb and it feels premium in the hand.",
        "Fast, light, and the speakers are loud. Very happy after {days}.",
        "Best device I have owned, setup was painless.",
        "Great value, I would buy it again.",
    ),
    "other": (
        "Arrived {days} early, well packed.",
        "Bought it as a gift, have not opened it yet.",
        "The case fits but the colour is darker than the photo.",
        "Works fine with my car's Bluetooth, nothing special otherwise.",
    ),
}
REVIEW_STARS = {
    "battery": ("1", "2"),
    "screen": ("1", "2"),
    "praise": ("4", "5"),
    "other": ("3", "4"),
}
REVIEW_COLUMNS = (
    ("date", "date"), ("reviewer", "entity"), ("product", "group"), ("stars", "stars"),
    ("review", "text"),
)  # fmt: skip

SETS_REVIEWS = {
    "name": "reviews",
    "entity": "reviewer",
    "entities": REVIEWERS,
    "kinds": REVIEW_KINDS,
    "a": "battery",
    "b": "screen",
    "slots": REVIEW_SLOTS,
    "groups": DEVICES,
    "kind_fields": {"stars": REVIEW_STARS},
    "format": "jsonl",
    "columns": REVIEW_COLUMNS,
    "phrasings": (
        "Which reviewers complained about the battery in one review and about the screen in "
        "another?",
        "Name every reviewer who has written a review with a battery complaint and also a review "
        "with a screen complaint.",
    ),
}
GROUPS_REVIEWS = {
    "name": "reviews",
    "groups": DEVICES,
    "group_field": "product",
    "entities": REVIEWERS,
    "kinds": REVIEW_KINDS,
    "target": "battery",
    "slots": REVIEW_SLOTS,
    "kind_fields": {"stars": REVIEW_STARS},
    "format": "jsonl",
    "columns": REVIEW_COLUMNS,
    "phrasings": (
        "For each product, how many reviews complain about the battery?",
        "Give the number of battery complaints per product.",
    ),
}

HOSTS = (
    "web-01", "web-02", "web-03", "web-04", "db-01", "db-02", "cache-01", "cache-02",
    "queue-01", "batch-01", "batch-02", "edge-01",
)  # fmt: skip
LOG_SLOTS = {
    "path": ("/var/log/app.log", "/data/tmp/upload.bin", "/var/lib/pg/wal", "/srv/cache/blob"),
    "mount": ("/var", "/data", "/home", "/srv"),
    "pct": ("91", "95", "97", "99"),
    "pid": ("2231", "4410", "8812", "15002"),
    "proc": ("java", "postgres", "nginx", "worker", "redis"),
    "mb": ("256", "512", "1024", "2048"),
    "secs": ("3", "10", "30", "60"),
    "peer": ("10.0.3.14", "db-01:5432", "auth.internal", "s3.eu-west"),
    "n": ("12", "40", "113", "800"),
}
LOG_KINDS = {
    "disk": (
        "no space left on device while writing {path}",
        "disk usage at {pct}% on {mount}",
        "filesystem {mount} remounted read-only after I/O errors",
        "inode table full on {mount}",
        "log rotation failed: disk quota exceeded on {mount}",
    ),
    "memory": (
        "out of memory: killed process {pid} ({proc})",
        "heap allocation of {mb} MB failed in {proc}",
        "swap exhausted, {proc} is thrashing",
        "container {proc} exceeded its memory limit and was restarted",
        "page allocation failure in {proc}, order 4",
    ),
    "routine": (
        "backup of {mount} completed in {secs}s",
        "cron job {proc}-cleanup finished",
        "health check passed",
        "config reloaded by {proc}",
        "session cleanup removed {n} entries",
    ),
    "network": (
        "connection to {peer} timed out after {secs}s",
        "TLS handshake with {peer} failed",
        "dropped {n} packets on eth0",
    ),
}
LOG_LEVELS = {
    "disk": ("error", "warn"),
    "memory": ("error",),
    "routine": ("info",),
    "network": ("warn",),
}
LOG_COLUMNS = (("ts", "timestamp"), ("host", "entity"), ("level", "level"), ("msg", "text"))

SETS_LOGS = {
    "name": "logs",
    "entity": "host",
    "entities": HOSTS,
    "kinds": LOG_KINDS,
    "a": "disk",
    "b": "memory",
    "slots": LOG_SLOTS,
    "kind_fields": {"level": LOG_LEVELS},
    "format": "logfmt",
    "columns": LOG_COLUMNS,
    "phrasings": (
        "Which hosts logged both a disk problem and a memory problem?",
        "Give the hosts that had a disk-space issue as well as a memory issue.",
    ),
}
ARGMAX_LOGS = {
    "name": "logs",
    "entity": "host",
    "entities": HOSTS,
    "kinds": LOG_KINDS,
    "target": "memory",
    "attribute": "entity",  # a field of the record
    "values": HOSTS,
    "slots": LOG_SLOTS,
    "kind_fields": {"level": LOG_LEVELS},
    "format": "logfmt",
    "columns": LOG_COLUMNS,
    "phrasings": (
        "Which host logged the most memory problems?",
        "Name the host with the largest number of out-of-memory or memory-limit errors.",
    ),
}

SPEAKERS = ("Priya", "Tom", "Aisha", "Marco", "Lin", "Sven", "Noor", "Kofi")
TEAMS = ("platform", "mobile", "data", "design", "growth")
PROJECTS = ("Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Falcon")
MEETING_SLOTS = {
    "project": PROJECTS,
    "n": ("two", "three", "four"),
    "month": ("April", "May", "June"),
    "vendor": ("the vendor", "legal", "the security team", "procurement"),
}
MEETING_KINDS = {
    "delay": (
        "{project} will slip by {n} weeks because {vendor} is late.",
        "We are behind on {project}; the migration needs another sprint.",
        "{project} launch moves to {month}, testing found too many bugs.",
        "Still blocked on {project} by {vendor}, so the date is pushed back.",
        "{project} is running late again, the design review is not done.",
        "Heads up: {project} misses its {month} milestone.",
    ),
    "progress": (
        "{project} shipped the beta to {n} pilot teams.",
        "{project} passed its review with {vendor}.",
        "Good news, {project} is ahead of plan.",
        "{project} demo went well, {vendor} signed off.",
    ),
    "question": (
        "Who owns the budget for {project}?",
        "Can we get a demo of {project} in {month}?",
        "Does {project} need sign-off from {vendor}?",
    ),
    "admin": (
        "Reminder: log {project} hours by Friday.",
        "{project} retro moved to Thursday.",
        "New starter joins the {project} team in {month}.",
    ),
}
MEETING_COLUMNS = (("date", "date"), ("speaker", "entity"), ("team", "group"), ("note", "text"))
ARGMAX_MEETINGS = {
    "name": "meetings",
    "entity": "speaker",
    "entities": SPEAKERS,
    "groups": TEAMS,
    "kinds": MEETING_KINDS,
    "target": "delay",
    "attribute": "project",  # a slot of the text
    "values": PROJECTS,
    "slots": MEETING_SLOTS,
    "format": "csv",
    "columns": MEETING_COLUMNS,
    "phrasings": (
        "Which project is mentioned most often in notes that report a delay?",
        "Across the notes about schedule slips, what project comes up the most?",
    ),
}
GROUPS_MEETINGS = {
    "name": "meetings",
    "groups": TEAMS,
    "group_field": "team",
    "entities": SPEAKERS,
    "kinds": MEETING_KINDS,
    "target": "delay",
    "slots": MEETING_SLOTS,
    "format": "csv",
    "columns": MEETING_COLUMNS,
    "phrasings": (
        "For each team, how many notes reported a delay?",
        "How many schedule-slip notes did each team record?",
    ),
}

HOST_OWNERS = ("Noor", "Kofi", "Mei", "Rafael", "Sana", "Tariq", "Ulla", "Viktor", "Wen", "Yara")
JOIN_HOSTS = {
    "name": "hosts",
    "owners": HOST_OWNERS,
    "owner_field": "owner",
    "left_name": "inventory",
    "right_name": "alerts",
    "kinds": {
        "disk_full": LOG_KINDS["disk"],
        "other": LOG_KINDS["memory"] + LOG_KINDS["routine"] + LOG_KINDS["network"],
    },
    "target": "disk_full",
    "slots": LOG_SLOTS,
    "key_format": "{prefix}-{n:02d}",
    "key_prefixes": ("app", "db", "cache", "etl", "edge", "mq"),
    "left_header": "host,owner,rack",
    "left_format": "{key},{owner},R{day:02d}",
    "right": "field",  # the key is a field of each alert
    "format": "logfmt",
    "columns": (("ts", "timestamp"), ("host", "key"), ("msg", "text")),
    "phrasings": (
        "Which owners have a host that ran out of disk space?",
        "List the owners of hosts that reported a full disk.",
    ),
}
ASSIGNEES = (
    "Omar Haddad", "Julia Berg", "Kenji Ito", "Lucia Ferro", "Mateo Cruz", "Nadia Petrova",
    "Oskar Lind", "Paula Reyes", "Quinn Byrne", "Rhea Das",
)  # fmt: skip
JOIN_TICKETS = {
    "name": "tickets",
    "owners": ASSIGNEES,
    "owner_field": "assignee",
    "left_name": "tickets",
    "right_name": "notes",
    "kinds": {
        "blocked": (
            "{key} is blocked until {vendor} replies.",
            "Cannot move {key} forward, waiting on {vendor}.",
            "{key} stuck: the test environment is down.",
            "No progress on {key}, blocked by the missing API access.",
        ),
        "other": (
            "{key} is done and deployed.",
            "{key} needs a second reviewer.",
            "{key} is in review, looks good.",
            "Closed {key} as a duplicate.",
            "{key} estimate is {n} days.",
        ),
    },
    "target": "blocked",
    "slots": {"vendor": MEETING_SLOTS["vendor"], "n": ("2", "3", "5", "8")},
    "key_format": "TCK-{n}",
    "left_header": None,
    "left_format": "{key} | assignee {owner} | opened 2026-03-{day:02d}",
    "right": "mention",
    "format": "csv",
    "columns": (("date", "date"), ("speaker", "speaker"), ("note", "text")),
    "speakers": SPEAKERS,
    "phrasings": (
        "Whose tickets were reported as blocked in the meeting notes?",
        "Which assignees have a ticket that someone said is blocked?",
    ),
}

SHOP_ITEMS = (
    "oat milk 1L", "sourdough loaf", "free-range eggs", "basmati rice 2kg", "olive oil 500ml",
    "greek yogurt", "dark chocolate", "coffee beans", "tomato passata", "frozen peas",
    "baby spinach", "cheddar 400g", "almond butter", "rye crackers",
)  # fmt: skip
CHANGED_INVENTORY = {
    "name": "inventory",
    "entity": "item",
    "entities": SHOP_ITEMS,
    "kinds": {
        "in_stock": (
            "plenty on the shelf",
            "{n} units in the back room",
            "fully stocked",
            "shelf full, delivery arrived this morning",
            "good supply, {n} cases",
        ),
        "sold_out": (
            "none left",
            "shelf empty since opening",
            "sold out, next delivery {when}",
            "out of stock",
            "last one sold before noon",
        ),
        "low": ("only {k} left", "running low, {k} on the shelf", "nearly gone"),
    },
    "from": "in_stock",
    "to": "sold_out",
    "dates": ("2026-03-02", "2026-03-09"),
    "slots": {"n": ("24", "40", "60", "120"), "k": ("2", "3", "5"), "when": ("Friday", "Monday")},
    "format": "jsonl",
    "columns": (("day", "date"), ("item", "entity"), ("note", "text")),
    "phrasings": (
        "Which items were in stock on 2026-03-02 but sold out on 2026-03-09?",
        "List the items that had good stock in the 2026-03-02 count and none left in the "
        "2026-03-09 count.",
    ),
}
PROJECT_NAMES = (
    "Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Falcon", "Garnet", "Helix", "Iris", "Juno",
    "Kestrel", "Lotus",
)  # fmt: skip
CHANGED_PROJECTS = {
    "name": "projects",
    "entity": "project",
    "entities": PROJECT_NAMES,
    "kinds": {
        "on_track": (
            "on schedule, nothing to flag",
            "all milestones met so far",
            "tracking to plan",
            "green, demo next week as planned",
            "going well, ahead by a couple of days",
        ),
        "at_risk": (
            "may miss the deadline, two engineers out sick",
            "at risk: the vendor API is late",
            "behind plan, scope needs cutting",
            "worried about the date, tests failing",
            "slipping, waiting on legal",
        ),
        "done": ("shipped, closing out", "complete and handed over"),
    },
    "from": "on_track",
    "to": "at_risk",
    "dates": ("2026-03-03", "2026-03-10"),
    "slots": {},
    "format": "csv",
    "columns": (("date", "date"), ("project", "entity"), ("owner", "speaker"), ("update", "text")),
    "speakers": SPEAKERS,
    "phrasings": (
        "Which projects were on track at the March 3 meeting but at risk at the March 10 meeting?",
        "Name the projects whose status went from on track (2026-03-03) to at risk (2026-03-10).",
    ),
}

CORPUS_INSPECTIONS = {
    "name": "inspection-files",
    "authors": ("M. Okoro", "J. Lindqvist", "P. Sharma", "A. Dubois", "K. Nowak", "E. Santos"),
    "sites": ("Harbour House", "Elm Court", "North Wing", "Riverside", "Station Hall"),
    "kinds": {
        "fire": (
            "Fire door on floor {floor} propped open with a wedge.",
            "Two extinguishers past their service date near room {room}.",
            "Emergency lighting failed the test in stairwell {s}.",
            "Exit route on floor {floor} blocked by stored furniture.",
        ),
        "water": (
            "Water dripping from the ceiling in room {room}.",
            "Damp patch spreading under the kitchen sink on floor {floor}.",
            "Leak from the roof after rain, buckets in corridor {s}.",
            "Burst pipe in the basement flooded the storage area.",
        ),
        "clear": (
            "No issues found, building in good order.",
            "Routine visit, everything compliant on all {floor} floors.",
        ),
        "electrical": (
            "Exposed wiring behind the reception desk.",
            "Overloaded power strip in room {room}.",
        ),
    },
    "a": "fire",
    "b": "water",
    "slots": {"floor": ("2", "3", "4", "5"), "room": ("101", "214", "305", "412"), "s": "ABC"},
    "header": "Inspector: {author}\nBuilding: {site}\nVisited: {date}\nForm: INS-{n:04d}",
    "path": "inspections/INS-{n:04d}.txt",
    "set_phrasings": (
        "Which inspectors reported both a fire-safety problem and a water leak?",
        "Name the inspectors who found a fire hazard on one visit and a leak on another.",
    ),
    "argmax_phrasings": (
        "Which building had the most water leaks reported?",
        "In which building were leaks found most often?",
    ),
}
CORPUS_MINUTES = {
    "name": "minutes-files",
    "authors": SPEAKERS[:6],
    "sites": TEAMS,
    "kinds": {
        "blocker": (
            "We are blocked on the {thing} until {vendor} answers.",
            "The {thing} work cannot continue: {vendor} has not granted access.",
            "Blocker: the {thing} depends on a contract {vendor} has not signed.",
        ),
        "budget": (
            "The budget for the {thing} was approved.",
            "Finance approved the {thing} spend for next quarter.",
            "Budget sign-off received for the {thing}.",
        ),
        "routine": (
            "Weekly sync, nothing to report on the {thing}.",
            "Went through the {thing} board, all on track.",
        ),
        "hiring": (
            "Interviewing for a {role} to help with the {thing}.",
            "Offer sent to a {role} candidate.",
        ),
    },
    "a": "blocker",
    "b": "budget",
    "slots": {
        "thing": ("data pipeline", "mobile release", "office move", "billing rewrite", "SSO"),
        "vendor": MEETING_SLOTS["vendor"],
        "role": ("designer", "data engineer", "tester"),
    },
    "header": "Team: {site}\nChair: {author}\nDate: {date}\nMinutes #{n}",
    "path": "minutes/{site}/{date}-{n}.md",
    "set_phrasings": (
        "Which chairs ran both a meeting that reported a blocker and one that approved a budget?",
        "Name every chair who chaired a meeting with a blocker and another meeting where a "
        "budget was approved.",
    ),
    "argmax_phrasings": (
        "Which team's meetings reported a blocker most often?",
        "Name the team with the most meetings that mention being blocked.",
    ),
}

HELDOUT = {
    "sets": (SETS_REVIEWS, SETS_LOGS),
    "argmax": (ARGMAX_MEETINGS, ARGMAX_LOGS),
    "groups": (GROUPS_REVIEWS, GROUPS_MEETINGS),
    "join": (JOIN_HOSTS, JOIN_TICKETS),
    "changed": (CHANGED_INVENTORY, CHANGED_PROJECTS),
    "files": (CORPUS_INSPECTIONS, CORPUS_MINUTES),
}
