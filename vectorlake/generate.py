"""A seeded synthetic marketplace catalog: listing changes, media, seller policy, images, labelled queries.

Everything the pipeline must survive is in the data by construction: partial updates, deletes and revivals,
at-least-once duplicates, out-of-order and late events (up to 6 h, beyond the 2 h watermark), images that
arrive before their listing, suppressed sellers and poison lines whose reasons are counted.

    from pathlib import Path
    from vectorlake.generate import GeneratorSpec, generate, write_landing

    out = Path("/tmp/landing")
    catalog = generate(GeneratorSpec(seed=7), image_root=str(out / "images"))
    write_landing(catalog, out)

`generate` is pure and deterministic: the same spec and image root give byte-identical output.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vectorlake.config import PROJECT_ROOT
from vectorlake.contracts import CONTRACTS, KINDS, MAX_DESCRIPTION_BYTES
from vectorlake.errors import ConfigError, VectorlakeError

if TYPE_CHECKING:  # faker, numpy and PIL load only when a catalog is made, not for `vectorlake --help`
    from faker import Faker
    from PIL import Image

log = logging.getLogger(__name__)

POISON_REASONS = (
    "malformed_json",
    "invalid_utf8",
    "not_an_object",
    "missing_required_field",
    "bad_timestamp",
    "unknown_op",
    "description_too_large",
    "wrong_type",
)
LISTING_FIELDS = tuple(f.name for f in CONTRACTS["listing_changes"] if not f.required)
REQUIRED = {kind: tuple(f.name for f in fields if f.required) for kind, fields in CONTRACTS.items()}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_SECOND, _MINUTE, _HOUR = 1000, 60_000, 3_600_000
_MAX_LATE = 6 * _HOUR  # no event, duplicates included, is emitted later than this after its event_ts
_HORIZON = 24 * _HOUR  # listings are created in the first 60% of it; follow-ups spread over all of it
_QUERIES = 30
# The categories are the reference taxonomy's (`reference.categories` in conf/base.yaml): a listing is
# filed under one of its leaf categories. What the generator adds is where faker_commerce's products go:
# leaf category id -> the products filed under it (`_leaf_categories` checks the ids against the CSV).
CATEGORIES_CSV = PROJECT_ROOT / "conf" / "reference" / "categories.csv"
_TAXONOMY = {
    "cat-furniture-chairs": "Chair",
    "cat-furniture-tables": "Table",
    "cat-automotive-cars": "Car",
    "cat-sports-bikes": "Bike",
    "cat-sports-balls": "Ball",
    "cat-electronics-computers": "Computer",
    "cat-electronics-accessories": "Keyboard Mouse",
    "cat-clothing-accessories": "Gloves Hat",
    "cat-clothing-apparel": "Pants Shirt",
    "cat-clothing-shoes": "Shoes",
    "cat-home-bath": "Towels",
    "cat-health-personal-care": "Soap",
    "cat-grocery-dairy": "Cheese",
    "cat-grocery-meat-fish": "Tuna Chicken Fish Bacon Sausages",
    "cat-grocery-prepared": "Pizza Salad Chips",
}
_CATEGORY = {product: cat for cat, products in _TAXONOMY.items() for product in products.split()}


@lru_cache(maxsize=1)
def _leaf_categories() -> tuple[str, ...]:
    """The leaf category ids of the reference taxonomy (no category names them as parent), sorted."""
    try:
        with CATEGORIES_CSV.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not {"category_id", "parent_id"} <= set(reader.fieldnames or []):
                raise ConfigError(f"{CATEGORIES_CSV}: expected columns category_id,parent_id,name")
            rows = list(reader)
    except OSError as e:
        raise ConfigError(f"cannot read the category taxonomy {CATEGORIES_CSV}: {e.strerror}") from e
    parents = {r["parent_id"] for r in rows}
    leaves = tuple(sorted(r["category_id"] for r in rows if r["category_id"] not in parents))
    unknown = sorted(set(_TAXONOMY) - set(leaves))
    if unknown:
        raise ConfigError(
            f"generator products are filed under {', '.join(unknown)}, not leaf categories of "
            f"{CATEGORIES_CSV}: add them there or change `_TAXONOMY` in vectorlake/generate.py"
        )
    return leaves


@lru_cache(maxsize=3)
def _words(kind: str) -> tuple[str, ...]:
    """faker_commerce's word list of a kind: product, adjective or material."""
    import faker_commerce

    return tuple(faker_commerce.PRODUCT_DATA[kind])


_LOCALES = ("en_US", "en_US", "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "ja_JP")
# Non-ASCII text so that byte and character lengths differ, as they do in a real catalog.
_LOCAL_PHRASE = {
    "de": "Größe M, Farbe wie abgebildet.",
    "fr": "Très bon état, expédition rapide.",
    "es": "¡Envío rápido y buen estado!",
    "it": "Ottime condizioni, spedizione più veloce.",
    "nl": "Zo goed als nieuw.",
    "ja": "送料無料です。",
}
_OFFSETS_MIN = (0, 0, 0, 0, 60, 120, -300, -480, 330)
_USED = {"Used", "Gently Used", "For repair"}
_SOFT = {"Cotton", "Soft", "Rubber", "Plastic"}
_HARD = {"Steel", "Wooden", "Concrete", "Plastic", "Granite", "Metal"}
_SUPPRESS = ("policy_violation", "counterfeit_report", "chargeback_rate")
_NOT_FOR = {  # poison reasons that do not apply to a stream
    "listing_changes": (),
    "media": ("description_too_large",),
    "seller_policy": ("description_too_large", "unknown_op"),
}
_WRONG_TYPE = {  # fields a wrong_type poison line may break
    "listing_changes": ("image_ids", "attributes", "title", "listing_id"),
    "media": ("image_id", "url"),
    "seller_policy": ("seller_id", "reason"),
}
_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon", "brick", "grass", "gravel")


@dataclass(frozen=True)
class GeneratorSpec:
    """What to generate. Rates are shares in [0, 1]."""

    seed: int = 42
    listings: int = 200  # distinct listing ids
    sellers: int = 20
    events: int = 2000  # about this many valid listing changes, before duplicates and poison
    partial_update_rate: float = 0.5  # of UPSERTs after the first, share that carry only some fields
    duplicate_rate: float = 0.05  # share of valid lines re-emitted byte for byte (at-least-once delivery)
    out_of_order_rate: float = 0.2  # share of events emitted 2 s to 10 min after their event_ts
    late_rate: float = 0.05  # share emitted 10 min to 6 h after their event_ts (beyond a 2 h watermark)
    delete_rate: float = 0.05  # share of listing changes that are DELETEs
    revive_rate: float = 0.5  # of DELETEs, share followed by a full UPSERT that revives the listing
    image_rate: float = 0.8  # share of listings with 1-3 images
    image_before_listing_rate: float = 0.3  # of images, share whose media event precedes the listing's first
    suppression_rate: float = 0.1  # share of sellers SUPPRESSED; every other one is ACTIVE again later
    poison_rate: float = 0.02  # poison lines per valid line, per stream (each reason once at least)
    start: datetime = datetime(2026, 11, 1, tzinfo=UTC)  # event times fall in the 24 h after this
    image_size: tuple[int, int] = (320, 240)  # (width, height) of every JPEG

    def __post_init__(self) -> None:
        rates = {k: v for k, v in asdict(self).items() if k.endswith("_rate")}
        bad = [f"{k}={v}" for k, v in rates.items() if not 0.0 <= v <= 1.0]
        if self.listings < 1 or self.sellers < 1 or self.events < 0:
            bad.append(f"listings={self.listings}, sellers={self.sellers}, events={self.events}")
        if self.late_rate + self.out_of_order_rate > 1.0:
            bad.append("late_rate + out_of_order_rate > 1")
        if self.start.tzinfo is None:
            bad.append("start has no time zone")
        if min(self.image_size) < 1:
            bad.append(f"image_size={self.image_size}")
        if bad:
            raise VectorlakeError(
                f"invalid generator spec: {'; '.join(bad)}; rates must lie in [0, 1], counts be positive"
            )


@dataclass(frozen=True)
class LabelledQuery:
    """A search query and the listing ids that are relevant to it by construction."""

    query: str
    relevant: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    """Generated raw lines per stream, in emission order, with what the generator knows about them."""

    listing_changes: list[bytes]
    media: list[bytes]
    seller_policy: list[bytes]
    images: dict[str, bytes]
    queries: list[LabelledQuery]
    poison: dict[str, int]
    duplicates: int
    spec: GeneratorSpec = field(default_factory=GeneratorSpec)
    # (kind, index into that kind's list) for every line, in one emission order across the three streams.
    emission_order: list[tuple[str, int]] = field(default_factory=list)

    def streams(self) -> dict[str, list[bytes]]:
        """The three event streams by kind."""
        return {
            "listing_changes": self.listing_changes,
            "media": self.media,
            "seller_policy": self.seller_policy,
        }


@dataclass
class _Listing:
    listing_id: str
    seller_id: str
    product: str
    category_id: str
    adjective: str
    material: str
    color: str
    brand: str
    price: float
    condition: str
    locale: str
    image_ids: list[str]
    description: str = ""

    @property
    def title(self) -> str:
        return f"{self.adjective} {self.material} {self.product}"

    def attributes(self) -> dict[str, Any]:
        return {
            "color": self.color,
            "material": self.material.lower(),
            "price": self.price,
            "condition": self.condition,
            "brand": self.brand,
        }

    def full(self, rng: random.Random) -> dict[str, Any]:
        return {
            "title": self.title,
            "description": self.description,
            "attributes": self.attributes(),
            "image_ids": list(self.image_ids),
            "seller_id": self.seller_id,
            "locale": _fmt_locale(self.locale, rng),
            "category_id": self.category_id,
        }


@dataclass
class _Rec:
    kind: str
    ts: int  # event time, epoch ms
    emit: int  # emission time, epoch ms: the order of the streams
    line: bytes
    body: dict[str, Any] | None  # None for a poison line


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _render_ts(ms: int, rng: random.Random) -> str | int:
    """~10% epoch milliseconds, else ISO-8601 with a zone (the same instant in varied offsets)."""
    if rng.random() < 0.1:
        return ms
    tz = timezone(timedelta(minutes=rng.choice(_OFFSETS_MIN)))
    text = (_EPOCH + ms * _MS).astimezone(tz).isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") and rng.random() < 0.3 else text


def _fmt_locale(locale: str, rng: random.Random) -> str:
    variants = (locale, locale.replace("_", "-"), locale.lower(), locale.lower().replace("_", "-"))
    return rng.choices(variants, weights=(5, 3, 1, 1))[0]


def _word_choices(product: str) -> tuple[list[str], list[str]]:
    """(adjectives, materials) that make sense for a product, drawn from faker_commerce's word lists."""
    category = _category(product)
    if category.startswith("cat-grocery"):
        return [a for a in _words("adjective") if a not in _USED], ["Fresh", "Frozen"]
    materials = _SOFT if category.startswith(("cat-clothing", "cat-home")) else _HARD
    return [a for a in _words("adjective") if a != "Tasty"], [m for m in _words("material") if m in materials]


def _category(product: str) -> str:
    return _CATEGORY.get(product, "cat-misc")


def _description(item: _Listing, rng: random.Random, fake: Faker) -> str:
    first = f"{item.title} in {item.color}, {item.material.lower()}, {item.condition}."
    rest = [fake.sentence(nb_words=rng.randint(6, 12)) for _ in range(rng.randint(1, 3))]
    phrase = _LOCAL_PHRASE.get(item.locale[:2])
    return " ".join([first, *rest, *([phrase] if phrase else [])])


def _new_listing(
    n: int, rng: random.Random, fake: Faker, sellers: list[str], spec: GeneratorSpec
) -> _Listing:
    product = rng.choice(_words("product"))
    adjectives, materials = _word_choices(product)
    listing_id = f"l-{n:05d}"
    n_images = rng.randint(1, 3) if rng.random() < spec.image_rate else 0
    item = _Listing(
        listing_id=listing_id,
        seller_id=rng.choices(sellers, weights=[1 / (i + 1) for i in range(len(sellers))])[0],
        product=product,
        category_id=_category(product) if rng.random() >= 0.03 else f"cat-unknown-{rng.randint(100, 999)}",
        adjective=rng.choice(adjectives),
        material=rng.choice(materials),
        color=fake.safe_color_name(),
        brand=fake.last_name() + rng.choice((" Goods", " & Co", " Works", "")),
        price=round(rng.uniform(1.5, 900.0), 2),
        condition=rng.choices(("new", "used"), weights=(3, 1))[0],
        locale=rng.choice(_LOCALES),
        image_ids=[f"img-{listing_id}-{k}" for k in range(1, n_images + 1)],
    )
    item.description = _description(item, rng, fake)
    return item


def _partial_update(item: _Listing, rng: random.Random, fake: Faker) -> dict[str, Any]:
    """Change one aspect of the listing and return only the fields that carry it."""
    kinds = ("price", "title", "description", "images", "category", "locale")
    kind = rng.choices(kinds, weights=(6, 2, 2, 1, 1, 1))[0]
    fields: dict[str, Any]
    if kind == "title":
        item.adjective = rng.choice(_word_choices(item.product)[0])
        fields = {"title": item.title}
    elif kind == "description":
        item.description = _description(item, rng, fake)
        fields = {"description": item.description}
    elif kind == "images" and len(item.image_ids) > 1:
        item.image_ids = item.image_ids[1:] + item.image_ids[:1]  # a new primary image
        fields = {"image_ids": list(item.image_ids)}
    elif kind == "category":
        known = _category(item.product)
        item.category_id = known if item.category_id != known else rng.choice(_leaf_categories())
        fields = {"category_id": item.category_id}
    elif kind == "locale":
        fields = {"locale": _fmt_locale(item.locale, rng)}  # same locale, another spelling
    else:  # attributes is one field: a price change resends the whole object
        item.price = round(max(0.99, item.price * rng.uniform(0.7, 1.15)), 2)
        fields = {"attributes": item.attributes()}
    if rng.random() < 0.1:  # null means "unchanged", exactly like an absent field
        fields |= dict.fromkeys(rng.sample([f for f in LISTING_FIELDS if f not in fields], 2))
    return {k: fields[k] for k in LISTING_FIELDS if k in fields}


def _timeline(
    item: _Listing, rng: random.Random, fake: Faker, spec: GeneratorSpec, t0: int, n_follow: int, p_del: float
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(event time, op, fields) of one listing in event-time order; the first is a full UPSERT."""
    end = (spec.start - _EPOCH) // _MS + _HORIZON
    times = sorted(rng.sample(range(t0 + _SECOND, max(end, t0 + 2 * _SECOND + n_follow)), n_follow))
    yield t0, "UPSERT", item.full(rng)
    revive = False
    for ts in times:
        if revive:
            revive = False
            yield ts, "UPSERT", item.full(rng)
        elif rng.random() < p_del:
            yield ts, "DELETE", {}
            revive = rng.random() < spec.revive_rate
            if not revive:
                return
        elif rng.random() < spec.partial_update_rate:
            yield ts, "UPSERT", _partial_update(item, rng, fake)
        else:
            item.price = round(item.price * rng.uniform(0.9, 1.1), 2)
            yield ts, "UPSERT", item.full(rng)
    if revive:
        yield (times[-1] if times else t0) + rng.randint(_MINUTE, 3 * _HOUR), "UPSERT", item.full(rng)


@lru_cache(maxsize=1)
def _photos() -> tuple[Image.Image, ...]:
    from PIL import Image
    from skimage import data  # heavy import, paid only when images are made

    photos = []
    for name in _PHOTOS:
        try:
            photos.append(Image.fromarray(getattr(data, name)()).convert("RGB"))
        except (ImportError, OSError, ValueError) as e:  # a photo that needs a download is skipped
            log.warning("scikit-image sample photo %s is not available offline: %s", name, e)
    if not photos:
        raise VectorlakeError("no scikit-image sample photo could be loaded; reinstall scikit-image")
    return tuple(photos)


def _render_image(photo: Image.Image, rng: random.Random, size: tuple[int, int]) -> bytes:
    """A JPEG variant of a photo: a random crop with the target aspect, maybe flipped, colour-shifted."""
    import numpy as np
    from PIL import Image

    w, h = photo.size
    aspect = size[0] / size[1]
    cw = max(1, int(min(w, h * aspect) * rng.uniform(0.5, 1.0)))
    ch = max(1, min(h, int(cw / aspect)))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = photo.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    gains = np.array([rng.uniform(0.75, 1.25) for _ in range(3)], dtype=np.float32)
    pixels = np.clip(np.asarray(img, dtype=np.float32) * gains, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _delay(rng: random.Random, spec: GeneratorSpec) -> int:
    """How long after its event time an event is emitted: late, out of order, or at once."""
    r = rng.random()
    if r < spec.late_rate:
        return rng.randint(10 * _MINUTE, _MAX_LATE)
    if r < spec.late_rate + spec.out_of_order_rate:
        return rng.randint(2 * _SECOND, 10 * _MINUTE)
    return 0


def _poison(reason: str, kind: str, body: dict[str, Any], rng: random.Random) -> bytes:
    """A line that is invalid for exactly one reason, made from a valid event with a fresh event_id."""
    b = dict(body)
    if reason == "malformed_json":
        line = _dumps(b)
        return line[: rng.randint(len(line) // 2, len(line) - 2)]
    if reason == "invalid_utf8":
        b["event_id"] += "\x00"
        return _dumps(b).replace(b"\\u0000", b"\xff\xfe")
    if reason == "not_an_object":
        return rng.choice(
            [_dumps([b]), _dumps(_dumps(b).decode()), str(int(b["event_id"].rsplit("-", 1)[1])).encode()]
        )
    if reason == "missing_required_field":
        name = rng.choice(REQUIRED[kind])
        if rng.random() < 0.5:
            del b[name]
        else:
            b[name] = rng.choice(["", None])
    elif reason == "bad_timestamp":
        b["event_ts"] = rng.choice(
            ["yesterday", "2026-13-45T10:00:00+00:00", "2026-11-01T10:00:00", "01/11/2026 10:00"]
        )
    elif reason == "unknown_op":
        b["op"] = rng.choice(["MERGE", "PATCH", "INSERT"] if kind == "listing_changes" else ["MODIFIED"])
    elif reason == "description_too_large":
        unit = rng.choice(["Solid build, ships fast. ", "Crème brûlée façade ✓ naïve. "])
        target = MAX_DESCRIPTION_BYTES + rng.randint(1, 8192)
        b["description"] = unit * (target // len(unit.encode()) + 1)
    elif reason == "wrong_type":
        name = rng.choice(_WRONG_TYPE[kind])
        value = b[name]
        if isinstance(value, list):
            b[name] = ",".join(value)  # "img-1,img-2" where an array belongs
        elif isinstance(value, dict):  # pairs instead of an object, or a non-scalar attribute
            nested = value | {"price": {"amount": value["price"], "currency": "EUR"}}
            b[name] = list(map(list, value.items())) if rng.random() < 0.5 else nested
        elif name.endswith("_id"):
            b[name] = int("".join(filter(str.isdigit, value)) or 0)
        else:
            b[name] = len(value) if name == "title" else [value]
    return _dumps(b)


def _final_state(recs: list[_Rec]) -> dict[str, dict[str, Any]]:
    """Live listings after per-field last-writer-wins by (event_ts, event_id); DELETE hides, UPSERT revives.

    Approximate and for labelling queries only: the pipeline's own oracle lives with the pipeline.
    """
    state: dict[str, dict[str, Any] | None] = {}
    valid = [(r.ts, r.body) for r in recs if r.kind == "listing_changes" and r.body is not None]
    for _, body in sorted(valid, key=lambda tb: (tb[0], tb[1]["event_id"])):
        lid = body["listing_id"]
        if body["op"] == "DELETE":
            state[lid] = None
        else:
            state[lid] = (state.get(lid) or {}) | {
                k: body[k] for k in LISTING_FIELDS if body.get(k) is not None
            }
    return {lid: s for lid, s in state.items() if s is not None}


def _queries(recs: list[_Rec], rng: random.Random) -> list[LabelledQuery]:
    """Queries from the words of final titles; relevant = live listings of active sellers with all words."""
    policy = [(r.ts, r.body) for r in recs if r.body and r.kind == "seller_policy"]
    status = {
        b["seller_id"]: b["status"] for _, b in sorted(policy, key=lambda tb: (tb[0], tb[1]["event_id"]))
    }
    titles = {
        lid: s["title"].lower().split()
        for lid, s in sorted(_final_state(recs).items())
        if "title" in s and status.get(s.get("seller_id", "")) != "SUPPRESSED"
    }
    queries: dict[str, LabelledQuery] = {}
    for lid in rng.sample(sorted(titles), min(_QUERIES, len(titles))):
        words = rng.choice([titles[lid][-2:], titles[lid]])  # "steel chair" or the whole title
        relevant = tuple(other for other, ws in titles.items() if set(words) <= set(ws))
        queries[" ".join(words)] = LabelledQuery(" ".join(words), relevant)
    return sorted(queries.values(), key=lambda q: q.query)


def _noise(recs: list[_Rec], spec: GeneratorSpec, rng: random.Random, new_id: Iterator[str]) -> Counter[str]:
    """Append duplicate re-emissions (counted under "duplicates") and poison lines (counted by reason)."""
    counts: Counter[str] = Counter()
    for kind in KINDS:
        valid = [r for r in recs if r.kind == kind]
        if not valid:
            continue
        for r in rng.choices(valid, k=round(spec.duplicate_rate * len(valid))):
            late = rng.random() < 0.1  # most redeliveries are quick, some come hours later
            lag = rng.randint(2 * _HOUR, 6 * _HOUR) if late else rng.randint(_SECOND, 5 * _MINUTE)
            emit = max(r.emit, min(r.emit + lag, r.ts + _MAX_LATE))
            recs.append(_Rec(kind, r.ts, emit, r.line, r.body))
            counts["duplicates"] += 1
        reasons = [c for c in POISON_REASONS if c not in _NOT_FOR[kind]]
        n = round(spec.poison_rate * len(valid))
        if spec.poison_rate > 0 and kind == "listing_changes" and spec.events >= 500:
            n = max(n, len(reasons))  # every reason at least once
            chosen = rng.sample(reasons, len(reasons)) + rng.choices(reasons, k=n - len(reasons))
        else:
            chosen = rng.choices(reasons, k=max(n, 1) if spec.poison_rate > 0 else 0)
        full = LISTING_FIELDS if kind == "listing_changes" else ()  # so every field a reason breaks is there
        templates = [r.body for r in valid if r.body and all(r.body.get(f) is not None for f in full)]
        lo, hi = min(r.emit for r in valid), max(r.emit for r in valid)
        for reason in chosen:
            line = _poison(reason, kind, rng.choice(templates) | {"event_id": next(new_id)}, rng)
            emit = rng.randint(lo, hi)
            recs.append(_Rec(kind, emit, emit, line, None))
            counts[reason] += 1
    return counts


@dataclass
class _Events:
    """The valid events generated so far: each gets the next event id, a rendered time and an emit time."""

    spec: GeneratorSpec
    rng: random.Random
    new_id: Iterator[str]
    recs: list[_Rec] = field(default_factory=list)

    def add(
        self, kind: str, ts: int, head: dict[str, Any], tail: dict[str, Any], delayed: bool = True
    ) -> None:
        rng = self.rng
        body = {"event_id": next(self.new_id), **head, "event_ts": _render_ts(ts, rng), **tail}
        emit = ts + (_delay(rng, self.spec) if delayed else 0)
        self.recs.append(_Rec(kind, ts, emit, _dumps(body), body))


def _seller_events(events: _Events, sellers: list[str], t_start: int) -> None:
    """Every seller onboarded before the start; some suppressed during the day, every other one reinstated."""
    rng, spec = events.rng, events.spec
    for sid in sellers:
        ts = t_start - rng.randint(_HOUR, 48 * _HOUR)
        events.add("seller_policy", ts, {"seller_id": sid}, {"status": "ACTIVE", "reason": "onboarded"})
    for n, sid in enumerate(rng.sample(sellers, round(spec.suppression_rate * len(sellers)))):
        ts = t_start + rng.randint(2 * _HOUR, 18 * _HOUR)
        events.add(
            "seller_policy", ts, {"seller_id": sid}, {"status": "SUPPRESSED", "reason": rng.choice(_SUPPRESS)}
        )
        if n % 2 == 0:  # every other suppressed seller wins an appeal
            ts += rng.randint(30 * _MINUTE, 6 * _HOUR)
            events.add(
                "seller_policy", ts, {"seller_id": sid}, {"status": "ACTIVE", "reason": "appeal_accepted"}
            )


def _image_events(
    events: _Events,
    item: _Listing,
    t0: int,
    photos: tuple[Image.Image, ...],
    root: Path,
    images: dict[str, bytes],
) -> None:
    """The media events of a listing created at ``t0``; the JPEGs they point at go into ``images``."""
    rng, spec = events.rng, events.spec
    for image_id in item.image_ids:
        if rng.random() < 0.03:  # named by the listing, never uploaded
            continue
        before = rng.random() < spec.image_before_listing_rate
        ts = t0 - rng.randint(_MINUTE, 30 * _MINUTE) if before else t0 + rng.randint(_SECOND, 2 * _HOUR)
        # Every image of a product starts from the same photo: similar products look alike.
        photo = photos[_words("product").index(item.product) % len(photos)]
        images[image_id] = jpeg = _render_image(photo, rng, spec.image_size)
        head = {"listing_id": item.listing_id, "image_id": image_id}
        url = f"file://{root / f'{image_id}.jpg'}"
        events.add(
            "media",
            ts,
            head,
            {"op": "ADDED", "url": url, "sha256": hashlib.sha256(jpeg).hexdigest()},
            not before,
        )
        if rng.random() < 0.05:
            events.add(
                "media", ts + rng.randint(10 * _MINUTE, 12 * _HOUR), head, {"op": "REMOVED", "url": url}
            )


def _listing_events(
    events: _Events, fake: Faker, sellers: list[str], t_start: int, root: Path
) -> dict[str, bytes]:
    """Each listing's media events and change timeline; returns the images (image id -> JPEG)."""
    rng, spec = events.rng, events.spec
    images: dict[str, bytes] = {}
    budget = max(0, spec.events - spec.listings)  # follow-up events still to hand out
    p_del = min(1.0, spec.delete_rate * spec.events / budget) if budget else 0.0
    photos = _photos() if spec.image_rate > 0 else ()
    for n in range(spec.listings):
        item = _new_listing(n + 1, rng, fake, sellers, spec)
        t0 = t_start + rng.randrange(int(0.6 * _HORIZON))
        _image_events(events, item, t0, photos, root, images)
        n_follow = min(budget, round(budget / (spec.listings - n) * rng.uniform(0.0, 2.0)))
        timeline = list(_timeline(item, rng, fake, spec, t0, n_follow, p_del))
        budget -= min(budget, len(timeline) - 1)  # a listing deleted for good passes its unused share on
        for ts, op, fields in timeline:
            events.add("listing_changes", ts, {"listing_id": item.listing_id}, {"op": op, **fields})
    return images


def _catalog(
    spec: GeneratorSpec,
    recs: list[_Rec],
    images: dict[str, bytes],
    queries: list[LabelledQuery],
    noise: Counter[str],
) -> Catalog:
    """The catalog of every record, valid or not, in emission order."""
    duplicates = noise.pop("duplicates", 0)
    streams: dict[str, list[bytes]] = {k: [] for k in KINDS}
    order: list[tuple[str, int]] = []
    for r in sorted(recs, key=lambda r: r.emit):  # stable: ties keep creation order
        order.append((r.kind, len(streams[r.kind])))
        streams[r.kind].append(r.line)
    sizes = {k: len(v) for k, v in streams.items()}
    log.info("generated %s, %d images, %d duplicates, poison %s", sizes, len(images), duplicates, dict(noise))
    return Catalog(
        listing_changes=streams["listing_changes"],
        media=streams["media"],
        seller_policy=streams["seller_policy"],
        images=images,
        queries=queries,
        poison=dict(sorted(noise.items())),
        duplicates=duplicates,
        spec=spec,
        emission_order=order,
    )


def generate(spec: GeneratorSpec, image_root: str) -> Catalog:
    """Generate a catalog deterministically from `spec`: same spec and image root, same bytes.

    `image_root` is the folder the images will be written to (`write_landing` puts them in
    `<out_dir>/images`); media events point at `file://<absolute image_root>/<image_id>.jpg`.
    """
    from faker import Faker

    rng = random.Random(spec.seed)  # noqa: S311 -- reproducible test data, not secrets
    fake = Faker("en_US")
    fake.seed_instance(spec.seed)
    events = _Events(spec, rng, (f"e-{spec.seed}-{n:08d}" for n in itertools.count()))
    t_start = (spec.start - _EPOCH) // _MS
    sellers = [f"s-{n:04d}" for n in range(1, spec.sellers + 1)]
    _seller_events(events, sellers, t_start)
    images = _listing_events(events, fake, sellers, t_start, Path(image_root).absolute())
    queries = _queries(events.recs, rng)
    noise = _noise(events.recs, spec, rng, events.new_id)
    return _catalog(spec, events.recs, images, queries, noise)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write next to the target under a hidden name, then rename: readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_landing(
    catalog: Catalog,
    out_dir: Path,
    files_per_kind: int = 4,
    streams: bool = True,
    rate_per_s: float | None = None,
) -> dict[str, int]:
    """Write the catalog as a landing folder and return the number of lines (or files) per kind.

    Layout: `images/<image_id>.jpg` (written first, so media events never point at a missing file),
    `<kind>/part-NNNNN.jsonl` for each stream in emission order, `queries.jsonl`, and `manifest.json`
    last. Every file is written atomically; rewriting the same catalog gives the same files, and part
    files left from an earlier write with more parts are removed.

    `streams=False` writes everything but the event files (for a run that sends the events to Kafka).
    With `rate_per_s`, events are written as they would arrive: one file per kind each second holding
    about `rate_per_s` lines in emission order, instead of `files_per_kind` files at once.
    """
    if files_per_kind < 1:
        raise VectorlakeError(f"files_per_kind must be at least 1, got {files_per_kind}")
    if rate_per_s is not None and rate_per_s <= 0:
        raise VectorlakeError(f"rate_per_s must be positive, got {rate_per_s}")
    counts: dict[str, int] = {}
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    for image_id, jpeg in sorted(catalog.images.items()):
        _write_atomic(image_dir / f"{image_id}.jpg", jpeg)
    if streams and rate_per_s is not None:
        counts.update(_trickle(catalog, out_dir, rate_per_s))
    elif streams:
        for kind, lines in catalog.streams().items():
            counts[kind] = len(lines)
            n = min(files_per_kind, len(lines))
            _write_parts(
                out_dir / kind, [lines[p * len(lines) // n : (p + 1) * len(lines) // n] for p in range(n)]
            )
    counts["images"] = len(catalog.images)
    counts["queries"] = len(catalog.queries)
    queries = b"".join(
        _dumps({"query": q.query, "relevant": list(q.relevant)}) + b"\n" for q in catalog.queries
    )
    _write_atomic(out_dir / "queries.jsonl", queries)
    spec = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(catalog.spec).items()}
    manifest = {
        "seed": catalog.spec.seed,
        "spec": spec,
        "counts": counts,
        "poison": catalog.poison,
        "duplicates": catalog.duplicates,
    }
    _write_atomic(out_dir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
    log.info("wrote landing folder %s: %s", out_dir, counts)
    return counts


def _write_parts(folder: Path, chunks: list[list[bytes]]) -> None:
    """Write `chunks` as part-00000.jsonl, ... and remove part files left from an earlier, longer write."""
    folder.mkdir(parents=True, exist_ok=True)
    written = set()
    for part, chunk in enumerate(chunks):
        path = folder / f"part-{part:05d}.jsonl"
        _write_atomic(path, b"".join(line + b"\n" for line in chunk))
        written.add(path.name)
    for stale in sorted(folder.glob("part-*.jsonl")):
        if stale.name not in written:
            log.info("removing %s, left from an earlier write", stale)
            stale.unlink()


def _trickle(catalog: Catalog, out_dir: Path, rate_per_s: float) -> dict[str, int]:
    """Write one file per kind and second, `rate_per_s` lines per second in emission order."""
    streams = catalog.streams()
    order = catalog.emission_order or [(k, i) for k in KINDS for i in range(len(streams[k]))]
    step = max(1, round(rate_per_s))
    for kind in KINDS:
        _write_parts(out_dir / kind, [])  # a fresh run starts with no part files
    began = time.monotonic()
    for second, start in enumerate(range(0, len(order), step)):
        by_kind: dict[str, list[bytes]] = {}
        for kind, i in order[start : start + step]:
            by_kind.setdefault(kind, []).append(streams[kind][i])
        for kind, lines in by_kind.items():
            _write_atomic(
                out_dir / kind / f"part-{second:05d}.jsonl", b"".join(line + b"\n" for line in lines)
            )
        time.sleep(max(0.0, began + (second + 1) * step / rate_per_s - time.monotonic()))
    return {kind: len(lines) for kind, lines in streams.items()}


def kafka_key(kind: str, line: bytes) -> bytes | None:
    """The message key of a line: its listing_id (seller_id for seller policy), None when it has none."""
    name = "seller_id" if kind == "seller_policy" else "listing_id"
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    value = obj.get(name) if isinstance(obj, dict) else None
    return value.encode() if isinstance(value, str) and value else None


def send_kafka(
    catalog: Catalog, bootstrap_servers: str, topics: Mapping[str, str], rate_per_s: float | None = None
) -> dict[str, int]:
    """Produce every line to its kind's topic in emission order, optionally at about `rate_per_s` lines/s.

    Waits for every delivery and raises `VectorlakeError` if any failed; returns lines sent per kind.
    """
    from confluent_kafka import Producer  # only runs that use Kafka need the client

    missing = sorted(set(KINDS) - set(topics))
    if missing:
        raise VectorlakeError(f"no topic given for {', '.join(missing)}; pass one topic per kind of {KINDS}")
    if rate_per_s is not None and rate_per_s <= 0:
        raise VectorlakeError(f"rate_per_s must be positive, got {rate_per_s}")
    streams = catalog.streams()
    order = catalog.emission_order or [(k, i) for k in KINDS for i in range(len(streams[k]))]
    errors: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(f"{msg.topic()}: {err}")

    # log_level 3: librdkafka prints only errors (not its transient "coordinator load in progress" retries)
    producer = Producer(
        {"bootstrap.servers": bootstrap_servers, "enable.idempotence": True, "linger.ms": 20, "log_level": 3}
    )
    counts = dict.fromkeys(KINDS, 0)
    began = time.monotonic()
    for n, (kind, i) in enumerate(order):
        line = streams[kind][i]
        while True:
            try:
                producer.produce(topics[kind], value=line, key=kafka_key(kind, line), on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                producer.poll(0.5)
        producer.poll(0)
        counts[kind] += 1
        if rate_per_s is not None:
            time.sleep(max(0.0, began + (n + 1) / rate_per_s - time.monotonic()))
    left = producer.flush(60)
    if left or errors:
        raise VectorlakeError(
            f"{len(errors)} Kafka deliveries failed and {left} are undelivered after 60 s "
            f"(first: {errors[:1]}); check that the broker at {bootstrap_servers} is up and the topics exist"
        )
    log.info("sent %s to %s", counts, dict(topics))
    return counts
