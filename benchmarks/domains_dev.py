"""The composite families' DEV domains: record formats, texts and wordings used to tune prompts.

Written before any tuning (issue 27), together with `domains_heldout.py`; the held-out file's
domains are never run before the final table (docs/benchmarks.md says when they first were).
Pure data: `composite_tasks.py` generates the tasks from it. Texts are templates with slots
({item}, {when}, ...) filled from `slots`, so the records of a task are distinct.

Dev domains: support messages (`date | user | text` lines), incident reports (`key: value`
blocks), service status (tab-separated with a header), orders with support messages (two
record lists), incident report files (a directory).
"""

from __future__ import annotations

SUPPORT_SLOTS = {
    "item": (
        "blender", "desk lamp", "rain jacket", "coffee grinder", "phone case", "office chair",
        "kettle", "backpack",
    ),
    "when": ("last Tuesday", "on Monday", "two weeks ago", "yesterday", "on the 3rd", "last month"),
    "amount": ("$49.99", "$120", "$15.50", "$89", "$230", "$12"),
}  # fmt: skip
SUPPORT_USERS = (
    "ana.lima", "ben.okafor", "chen.wei", "dara.kelly", "emil.novak", "fatima.said", "gus.moreau",
    "hana.sato", "ivan.petrov", "jules.roy", "kira.nolan", "leo.brandt", "maya.cohen", "nico.russo",
    "olga.berg", "pia.lund",
)  # fmt: skip
SUPPORT_KINDS = {
    "billing": (
        "I was charged twice for my {item} order and nobody has refunded me.",
        "The invoice for the {item} shows {amount}, not the price on your site. Fix this.",
        "My card was billed for a {item} I cancelled {when}. This is not okay.",
        "Still waiting on the refund for the {item} I returned {when}, it has been weeks.",
        "You took {amount} from my account for a {item} I never ordered.",
        "The discount was not applied to my {item} and I paid {amount} instead. Annoying.",
    ),
    "delivery": (
        "My {item} was supposed to arrive {when} and it still is not here.",
        "The courier left my {item} at the wrong address, I never got it.",
        "Tracking says my {item} was delivered {when} but there is nothing at my door.",
        "The {item} box arrived crushed and soaked, the driver just threw it over the fence.",
        "Third time the {item} delivery has been rescheduled. Absolutely useless.",
        "My {item} has been stuck at the depot since {when}.",
    ),
    "praise": (
        "Really happy with the {item} I got {when}, it works great.",
        "Thanks for the quick help with my {item} {when}!",
        "The {item} exceeded my expectations, great quality for {amount}.",
        "Lovely packaging on the {item}, made my day.",
    ),
    "question": (
        "Does the {item} come with a warranty?",
        "Can I change the colour of the {item} I ordered {when}?",
        "Do you have the {item} in a larger size?",
        "Is the {item} I saw {when} still on sale for {amount}?",
    ),
}

SETS_SUPPORT = {
    "name": "support",
    "entity": "user",
    "entities": SUPPORT_USERS,
    "kinds": SUPPORT_KINDS,
    "a": "billing",
    "b": "delivery",
    "slots": SUPPORT_SLOTS,
    "format": "pipe",
    "columns": (("date", "date"), ("user", "entity"), ("text", "text")),
    "phrasings": (
        "Which users sent both a complaint about billing and a complaint about delivery?",
        "List the users who complained about a billing problem and also, in another message, "
        "about a delivery problem.",
    ),
}

# Filter then argmax: the product is named in the text only.
ARGMAX_SUPPORT = {
    "name": "support",
    "entity": "user",
    "entities": SUPPORT_USERS,
    "kinds": SUPPORT_KINDS,
    "target": "delivery",
    "attribute": "item",  # a slot of the text
    "values": SUPPORT_SLOTS["item"],
    "slots": SUPPORT_SLOTS,
    "format": "pipe",
    "columns": (("date", "date"), ("user", "entity"), ("text", "text")),
    "phrasings": (
        "Which product is named most often in the complaints about delivery?",
        "Among the messages complaining about a delivery, which product comes up most?",
    ),
}

INCIDENT_SERVICES = ("checkout", "search", "payments", "login", "notifications", "inventory")
INCIDENT_SLOTS = {
    "secs": ("4", "7", "12", "20", "35"),
    "mins": ("5", "12", "25", "40", "90"),
    "region": ("eu-west", "us-east", "ap-south", "the Nordics", "Brazil"),
    "when": ("Tuesday", "morning", "weekend", "Friday night", "last"),
    "pct": ("5", "10", "25", "50"),
}
INCIDENT_KINDS = {
    "outage": (
        "Completely unavailable: every request returned 503 for {mins} minutes.",
        "The service went down for {mins} minutes after the database failover.",
        "No responses at all from the {region} cluster until it was restarted.",
        "Hard down, health checks failing on all nodes after the {when} deploy.",
        "Total outage in {region}; traffic was drained to another region after {mins} minutes.",
    ),
    "slow": (
        "p95 latency climbed to {secs} s during the {when} peak.",
        "Pages load very slowly for users in {region}.",
        "Requests queue up and take {secs} s to complete.",
        "Users in {region} report the app hangs for {secs} seconds before responding.",
        "Every call has been sluggish since the {when} deploy.",
    ),
    "security": (
        "Burst of failed logins from one address range in {region}.",
        "An API key was found in a public repository and revoked.",
        "Suspicious admin session from {region}, account locked.",
    ),
    "change": (
        "Planned certificate rotation finished without impact.",
        "Feature flag for the new banner enabled for {pct}% of users.",
        "Database index rebuilt during the {when} maintenance window.",
    ),
}
GROUPS_INCIDENTS = {
    "name": "incidents",
    "groups": INCIDENT_SERVICES,
    "group_field": "service",
    "kinds": INCIDENT_KINDS,
    "target": "outage",
    "slots": INCIDENT_SLOTS,
    "format": "blocks",
    "columns": (("id", "id"), ("service", "group"), ("opened", "date"), ("summary", "text")),
    "id_format": "INC-{n:04d}",
    "phrasings": (
        "For each service, how many incidents were outages?",
        "Count the outage incidents per service.",
    ),
}

STATUS_SERVICES = (
    "api-gateway", "auth", "billing-svc", "cdn", "email", "image-resize", "ledger", "maps",
    "orders", "pdf-render", "queue", "recommend", "reports", "search-idx", "sms", "uploads",
)  # fmt: skip
STATUS_SLOTS = {
    "pct": ("2", "4", "8", "12", "20"),
    "ms": ("180", "450", "900", "1500", "2400"),
    "n": ("2", "3", "4", "6"),
}
STATUS_KINDS = {
    "healthy": (
        "all checks passing",
        "running normally, p99 {ms} ms well within budget",
        "green on every probe",
        "no errors in the last 24 h",
        "healthy; {n} replicas up",
    ),
    "degraded": (
        "error rate elevated at {pct}%",
        "slow: p99 at {ms} ms and rising",
        "partially failing, {n} of 8 replicas unhealthy",
        "intermittent timeouts for some clients",
        "degraded after a bad config push, {pct}% of requests fail",
    ),
    "down": (
        "not responding to any probe",
        "hard down since the overnight upgrade",
        "offline; all {n} replicas crashed",
    ),
}
CHANGED_STATUS = {
    "name": "status",
    "entity": "service",
    "entities": STATUS_SERVICES,
    "kinds": STATUS_KINDS,
    "from": "healthy",
    "to": "degraded",
    "dates": ("2026-03-01", "2026-03-08"),
    "slots": STATUS_SLOTS,
    "format": "tsv",
    "columns": (("date", "date"), ("service", "entity"), ("status", "text")),
    "phrasings": (
        "Which services went from healthy on 2026-03-01 to degraded on 2026-03-08?",
        "List every service that was healthy in the 2026-03-01 report but degraded in the "
        "2026-03-08 report.",
    ),
}

CUSTOMERS = (
    "Ana Lima", "Ben Okafor", "Chen Wei", "Dara Kelly", "Emil Novak", "Fatima Said",
    "Gus Moreau", "Hana Sato", "Ivan Petrov", "Jules Roy", "Kira Nolan", "Leo Brandt",
)  # fmt: skip
ORDER_KINDS = {
    "lost_or_late": (
        "Order {key} still hasn't arrived, it's a week late.",
        "Where is order {key}? The tracking has not moved since {when}.",
        "Order {key} was marked delivered but never reached me, it is lost.",
        "The courier says order {key} went missing in transit.",
        "Order {key} is {n} days past the promised date.",
    ),
    "other": (
        "Can I add a gift note to order {key}?",
        "Order {key} arrived today, thanks, all good.",
        "Please change the billing address on order {key}.",
        "The item in order {key} is the wrong colour, can I swap it?",
        "Loved the packaging of order {key}.",
    ),
}
JOIN_ORDERS = {
    "name": "orders",
    "owners": CUSTOMERS,
    "owner_field": "customer",
    "left_name": "orders",
    "right_name": "messages",
    "kinds": ORDER_KINDS,
    "target": "lost_or_late",
    "slots": {"when": SUPPORT_SLOTS["when"], "n": ("3", "5", "9", "12")},
    "key_format": "{n:05d}",
    "left_format": "order {key} | customer {owner} | placed 2026-03-{day:02d}",
    "left_header": None,
    "right": "mention",  # the key is cited in the text
    "format": "pipe",
    "columns": (("date", "date"), ("text", "text")),
    "phrasings": (
        "Which customers had an order that was reported lost or late?",
        "Name the customers whose orders were reported missing or delayed in the messages.",
    ),
}

REPORT_AUTHORS = ("R. Adeyemi", "S. Larsen", "T. Moreau", "U. Khan", "V. Rossi", "W. Chen")
REPORT_SITES = ("Leeds", "Porto", "Gdansk", "Lyon", "Tartu")
REPORT_KINDS = {
    "outage": INCIDENT_KINDS["outage"],
    "security": (
        "Burst of failed logins from one address range in {region}.",
        "A contractor badge was used at the site after it had been revoked.",
        "Phishing mail reached {pct}% of staff; two people entered their password.",
        "Unknown laptop found plugged into the lab network in {region}.",
    ),
    "slow": INCIDENT_KINDS["slow"],
    "change": INCIDENT_KINDS["change"],
}
CORPUS_INCIDENTS = {
    "name": "incident-files",
    "authors": REPORT_AUTHORS,
    "sites": REPORT_SITES,
    "kinds": REPORT_KINDS,
    "a": "outage",
    "b": "security",
    "slots": INCIDENT_SLOTS,
    "header": "Author: {author}\nSite: {site}\nDate: {date}\nRef: IR-{n:04d}",
    "path": "reports/{site}/IR-{n:04d}.txt",
    "set_phrasings": (
        "Which authors filed both an outage report and a security report?",
        "Name the report authors who wrote at least one outage report and at least one "
        "security report.",
    ),
    "argmax_phrasings": (
        "Which site had the most outage reports?",
        "At which site were outages reported most often?",
    ),
}

DEV = {
    "sets": (SETS_SUPPORT,),
    "argmax": (ARGMAX_SUPPORT,),
    "groups": (GROUPS_INCIDENTS,),
    "join": (JOIN_ORDERS,),
    "changed": (CHANGED_STATUS,),
    "files": (CORPUS_INCIDENTS,),
}
