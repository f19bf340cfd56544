"""Reference data kept in conf/reference: the category taxonomy and the locale table (pure Python).

categories.csv: ``category_id,parent_id,name``; a category's path is its ancestors' names and its own,
joined by `PATH_SEPARATOR` (``Furniture > Chairs``). locales.csv: ``code,language,region,name,
default_for_language``; a bare language (``de``) normalizes to the locale marked as its default.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vectorlake.errors import ConfigError

PATH_SEPARATOR = " > "
_LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{2}|[0-9]{3}))?$")


@dataclass(frozen=True)
class Reference:
    category_paths: Mapping[str, str]  # category_id -> "Parent > Child"
    locales: Mapping[str, str]  # formatted locale or bare language -> canonical locale code


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(
                    f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(columns)}"
                )
            return list(reader)
    except OSError as e:
        raise ConfigError(f"cannot read reference data {path}: {e.strerror}") from e


def category_paths(rows: list[dict[str, str]]) -> dict[str, str]:
    """category_id -> full path; raises ConfigError on an unknown parent or a cycle."""
    parent = {r["category_id"]: r["parent_id"] or None for r in rows}
    name = {r["category_id"]: r["name"] for r in rows}
    out = {}
    for cid in parent:
        chain: list[str] = []
        node: str | None = cid
        while node is not None:
            if node not in parent:
                raise ConfigError(f"category taxonomy: {chain[-1]!r} has unknown parent {node!r}")
            if node in chain:
                raise ConfigError(f"category taxonomy: cycle through {node!r}")
            chain.append(node)
            node = parent[node]
        out[cid] = PATH_SEPARATOR.join(name[c] for c in reversed(chain))
    return out


def format_locale(raw: str) -> str:
    """``en_us`` -> ``en-US``; a value that is not a language[-region] tag is returned trimmed, unchanged."""
    m = _LOCALE.match(raw.strip())
    if m is None:
        return raw.strip()
    lang, region = m.group(1).lower(), m.group(2)
    return f"{lang}-{region.upper()}" if region else lang


def locale_map(rows: list[dict[str, str]]) -> dict[str, str]:
    """Formatted tag -> canonical code: each code maps to itself, a bare language to its default."""
    out = {}
    for r in rows:
        code = format_locale(r["code"])
        if code != r["code"]:
            raise ConfigError(f"locale table: code {r['code']!r} is not in canonical form {code!r}")
        out[code] = code
        if r["default_for_language"].strip().lower() == "true":
            if r["language"] in out:
                raise ConfigError(f"locale table: two defaults for language {r['language']!r}")
            out[r["language"]] = code
    return out


def normalize_locale(raw: str | None, table: Mapping[str, str]) -> str | None:
    """The canonical locale of a raw value (what the silver merge computes in Spark)."""
    if raw is None:
        return None
    formatted = format_locale(raw)
    return table.get(formatted, formatted)


def load_reference(categories_csv: str, locales_csv: str) -> Reference:
    return Reference(
        category_paths=category_paths(_rows(Path(categories_csv), ("category_id", "parent_id", "name"))),
        locales=locale_map(
            _rows(Path(locales_csv), ("code", "language", "region", "name", "default_for_language"))
        ),
    )
