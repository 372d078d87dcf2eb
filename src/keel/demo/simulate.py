"""A seeded simulator of card transactions: the data of keel's demo and of many tests.

Customers have names, emails and card numbers in realistic formats (Luhn-valid), an age, a sex
and a home region. Transactions have a time, amount, merchant category, device, distance from
home and a recent-activity count; fraud is a function of those, and its label arrives late
(a chargeback days to weeks later; a legitimate transaction is confirmed after 45 days).

Scheduled events, relative to the start, give monitoring and the loop something to find:
a shift in the region mix, a merchant category that did not exist in training, and a new fraud
pattern in one region.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

REGIONS = ("north", "south", "east", "west", "central")
REGION_MIX = (0.30, 0.25, 0.20, 0.15, 0.10)
SHIFTED_REGION_MIX = (0.12, 0.18, 0.20, 0.40, 0.10)
CATEGORIES = (
    "grocery",
    "fuel",
    "restaurants",
    "electronics",
    "travel",
    "online_retail",
    "pharmacy",
    "entertainment",
)
CATEGORY_MIX = (0.26, 0.14, 0.16, 0.08, 0.06, 0.18, 0.07, 0.05)
NEW_CATEGORY = "crypto_exchange"
DEVICES = ("pos", "mobile", "web", "atm")
DEVICE_MIX = (0.5, 0.28, 0.17, 0.05)
_AMOUNT = {  # lognormal (mu, sigma) per category
    "grocery": (3.6, 0.6), "fuel": (3.9, 0.4), "restaurants": (3.4, 0.7), "electronics": (5.3, 0.9),
    "travel": (5.8, 0.8), "online_retail": (4.0, 0.9), "pharmacy": (3.2, 0.6),
    "entertainment": (3.5, 0.7), NEW_CATEGORY: (6.0, 1.0),
}  # fmt: skip
_RISKY = {"electronics": 1.1, "travel": 0.8, "online_retail": 0.9, NEW_CATEGORY: 1.4}
FIRST_NAMES = (
    "Ana", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kira",
    "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoe", "Amara", "Bruno", "Chen", "Dina", "Emil", "Fatima",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Garcia", "Müller", "Rossi", "Kowalski", "Nguyen", "Okafor", "Silva", "Novak",
    "Jensen", "Dubois", "Khan", "Ivanova", "Tanaka", "Murphy", "Haddad", "Larsen", "Moreau",
    "Costa", "Schmidt", "Ali", "Park", "Fischer", "Santos",
)  # fmt: skip
DOMAINS = ("example.com", "mail.test", "inbox.example", "post.example.org")


@dataclass(frozen=True)
class Event:
    """A scheduled change in the simulated world."""

    kind: str  # region_shift | new_category | new_fraud_pattern
    day: int  # days after the simulator's start
    description: str


def default_events() -> tuple[Event, ...]:
    return (
        Event("region_shift", 120, "the region mix shifts towards 'west' (15% -> 40%)"),
        Event(
            "new_category", 150, f"merchant category {NEW_CATEGORY!r} appears (unseen in training)"
        ),
        Event(
            "new_fraud_pattern", 180, "new fraud in 'south': web purchases, any amount, any hour"
        ),
    )


@dataclass
class TransactionSimulator:
    """Card transactions from a fixed seed: same arguments, same rows.

    >>> sim = TransactionSimulator(seed=1)
    >>> frame = sim.generate(days=2, per_day=50)
    >>> frame.height, frame["transaction_id"].n_unique()
    (100, 100)
    """

    seed: int = 0
    start: dt.datetime = dt.datetime(2025, 1, 1)
    n_customers: int = 4000
    events: tuple[Event, ...] = field(default_factory=default_events)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._customers = self._make_customers()
        self._next_id = 0

    def event_day(self, kind: str) -> int | None:
        return next((e.day for e in self.events if e.kind == kind), None)

    def _make_customers(self) -> dict[str, np.ndarray]:
        rng, n = self._rng, self.n_customers
        first = rng.choice(FIRST_NAMES, n)
        last = rng.choice(LAST_NAMES, n)
        names = np.char.add(np.char.add(first.astype(str), " "), last.astype(str))
        emails = np.array(
            [
                f"{f.lower()}.{_ascii(ln).lower()}{i % 97}@{rng.choice(DOMAINS)}"
                for i, (f, ln) in enumerate(zip(first, last, strict=True))
            ]
        )
        cards = np.array([_card_number(rng) for _ in range(n)])
        age = np.clip(rng.normal(42, 14, n), 18, 90).astype(np.int64)
        sex = rng.choice(np.array(["F", "M"]), n)
        home = rng.choice(len(REGIONS), n, p=REGION_MIX)
        return {"name": names, "email": emails, "card": cards, "age": age, "sex": sex, "home": home}

    def _day_offsets(self, n: int, *, days: float, start_day: float) -> np.ndarray:
        """`n` sorted times in days since the start, with a daily rhythm (fewer at night)."""
        rng = self._rng
        offsets = np.sort(rng.uniform(start_day, start_day + days, n))
        hour_shift = rng.normal(0, 0.08, n)
        day_frac = np.clip(
            (offsets % 1.0) * 0.6 + 0.3 + hour_shift * (offsets % 1.0 < 0.25), 0, 0.9999
        )
        offsets = np.floor(offsets) + np.where(rng.random(n) < 0.15, offsets % 1.0, day_frac)
        return np.sort(offsets)

    def generate(self, *, days: float, per_day: int = 2000, start_day: float = 0.0) -> pl.DataFrame:
        """Transactions from `start_day` for `days` days after the start, in time order."""
        rng = self._rng
        n = int(days * per_day)
        offsets = self._day_offsets(n, days=days, start_day=start_day)
        day = offsets
        ts = np.datetime64(self.start, "us") + (offsets * 86_400e6).astype("timedelta64[us]")
        hour = ((offsets % 1.0) * 24).astype(np.int64)

        shift_day = self.event_day("region_shift")
        mix_after = np.asarray(SHIFTED_REGION_MIX)
        region = rng.choice(len(REGIONS), n, p=REGION_MIX)
        if shift_day is not None:
            late = day >= shift_day
            region[late] = rng.choice(len(REGIONS), int(late.sum()), p=mix_after)
        # customers are drawn from those living in the region (travel is rare)
        cust = self._customers
        by_region = [np.flatnonzero(cust["home"] == r) for r in range(len(REGIONS))]
        customer = np.array([by_region[r][rng.integers(len(by_region[r]))] for r in region])

        cats = np.asarray(CATEGORIES)
        category = cats[rng.choice(len(CATEGORIES), n, p=CATEGORY_MIX)].astype(object)
        new_day = self.event_day("new_category")
        if new_day is not None:
            late = (day >= new_day) & (rng.random(n) < 0.06)
            category[late] = NEW_CATEGORY
        mu = np.array([_AMOUNT[c][0] for c in category])
        sigma = np.array([_AMOUNT[c][1] for c in category])
        amount = np.round(np.exp(rng.normal(mu, sigma)), 2)
        device = np.asarray(DEVICES)[rng.choice(len(DEVICES), n, p=DEVICE_MIX)]
        distance = np.round(
            rng.exponential(8.0, n) + (rng.random(n) < 0.03) * rng.exponential(400, n), 1
        )
        recent = rng.poisson(1.2, n)

        logit = _fraud_logit(
            category, amount, device, hour, distance, recent, cust["age"][customer]
        )
        pattern_day = self.event_day("new_fraud_pattern")
        if pattern_day is not None:
            south = REGIONS.index("south")
            hit = (day >= pattern_day) & (region == south) & (device == "web")
            logit = logit + 5.0 * hit
        fraud = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
        delay_days = np.where(fraud == 1, rng.uniform(3, 40, n), 45.0)
        label_at = ts + (delay_days * 86_400e6).astype("timedelta64[us]")

        ids = np.arange(self._next_id, self._next_id + n)
        self._next_id += n
        return pl.DataFrame(
            {
                "transaction_id": [f"tx{self.seed:02d}{i:08d}" for i in ids],
                "ts": ts,
                "customer_name": cust["name"][customer],
                "email": cust["email"][customer],
                "card_number": cust["card"][customer],
                "customer_age": cust["age"][customer],
                "customer_sex": cust["sex"][customer],
                "region": np.asarray(REGIONS)[region],
                "merchant_category": category.astype(str),
                "amount": amount,
                "device": device,
                "distance_km": distance,
                "recent_tx_24h": recent.astype(np.int64),
                "is_fraud": fraud,
                "label_available_at": label_at,
            }
        )


def _fraud_logit(
    category: np.ndarray,
    amount: np.ndarray,
    device: np.ndarray,
    hour: np.ndarray,
    distance: np.ndarray,
    recent: np.ndarray,
    age: np.ndarray,
) -> np.ndarray:
    """The log-odds of fraud before the scheduled new pattern (no randomness here)."""
    risky = np.array([_RISKY.get(c, 0.0) for c in category])
    return np.asarray(
        -7.0
        + 1.6 * np.log1p(amount) / np.log(1000)
        + 1.8 * risky
        + 2.0 * ((device == "web") | (device == "mobile")) * ((hour < 5) | (hour >= 23))
        + 0.008 * np.minimum(distance, 500)
        + 0.6 * np.minimum(recent, 6)
        - 0.015 * (age - 40)
    )


def _ascii(text: str) -> str:
    return text.replace("ü", "ue").replace("ö", "oe").replace("ä", "ae")


def _card_number(rng: np.random.Generator) -> str:
    """A Luhn-valid 16-digit number with a Visa or Mastercard prefix, in groups of four."""
    prefix = [4] if rng.random() < 0.6 else [5, int(rng.integers(1, 6))]
    digits = prefix + [int(d) for d in rng.integers(0, 10, 15 - len(prefix))]
    total = 0
    for i, d in enumerate(reversed(digits)):  # the check digit will sit to the right
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return " ".join(s[i : i + 4] for i in range(0, 16, 4))
