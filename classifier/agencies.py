"""Agencies: profiles (data/agency_profiles.toml) and the hierarchy top-level body (organismo) → unit.

The hierarchy comes, in order of precedence, from data/units.csv (the catalogue's agencies with their organismo),
the profiles' ``parent`` field, and a heuristic on names such as "Ministerio X - Dirección Y".
"""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from classifier.normalize import fold_accents


@dataclass(frozen=True)
class AgencyProfile:
    name: str
    acronym: str = ""
    parent: str = ""
    aliases: tuple[str, ...] = ()
    description: str = ""
    keywords: tuple[str, ...] = ()

    def document(self) -> str:
        """The profile as training text."""
        parts = [self.name, self.acronym, " ".join(self.aliases), self.description, ". ".join(self.keywords)]
        return ". ".join(p for p in parts if p)


def _key(name: str) -> str:
    return " ".join(fold_accents(name).replace(",", " ").replace(".", "").split())


@dataclass
class AgencyDirectory:
    profiles: dict[str, AgencyProfile]
    unit_organismo: dict[str, str] = field(default_factory=dict)  # from units.csv
    unit_acronym: dict[str, str] = field(default_factory=dict)
    _index: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for profile in self.profiles.values():
            self._index.setdefault(_key(profile.name), profile.name)
        for profile in self.profiles.values():
            for alias in profile.aliases:
                self._index.setdefault(_key(alias), profile.name)

    def canonical(self, name: str | None) -> str | None:
        """The profile name for ``name`` or one of its aliases; ``name`` itself when unknown."""
        if not name:
            return None
        return self._index.get(_key(name), name)

    def profile(self, name: str | None) -> AgencyProfile | None:
        canonical = self.canonical(name)
        return self.profiles.get(canonical) if canonical else None

    def acronym_of(self, name: str) -> str:
        if name in self.unit_acronym:
            return self.unit_acronym[name]
        profile = self.profile(name)
        return profile.acronym if profile else ""

    def organismo_of(self, name: str | None) -> str | None:
        """The top-level body of an agency name (itself when it is top-level or unknown)."""
        if not name:
            return None
        if name in self.unit_organismo:
            return self.canonical(self.unit_organismo[name])
        seen: set[str] = set()
        current = self.canonical(name) or name
        while current not in seen:
            seen.add(current)
            profile = self.profiles.get(current)
            if profile is None:
                return self._organismo_by_name(current)
            if not profile.parent:
                return current
            current = self.canonical(profile.parent) or profile.parent
        return current

    def _organismo_by_name(self, name: str) -> str:
        """Heuristic for an unknown unit: the part before " - " when it names a known body."""
        if " - " in name:
            head = name.split(" - ", 1)[0].strip()
            if self._index.get(_key(head)) or head in self.unit_organismo:
                return self.organismo_of(head) or head
            return head
        return name

    def top_level(self) -> list[str]:
        return sorted({self.organismo_of(n) or n for n in self.profiles})


def _read_data(name: str) -> str:
    return resources.files("classifier").joinpath(f"data/{name}").read_text(encoding="utf-8")


def parse_profiles(text: str) -> dict[str, AgencyProfile]:
    data = tomllib.loads(text)
    profiles: dict[str, AgencyProfile] = {}
    for entry in data.get("agency", []):
        name = str(entry["name"]).strip()
        profiles[name] = AgencyProfile(
            name=name,
            acronym=str(entry.get("acronym", "")).strip(),
            parent=str(entry.get("parent", "")).strip(),
            aliases=tuple(str(a).strip() for a in entry.get("aliases", []) if str(a).strip()),
            description=str(entry.get("description", "")).strip(),
            keywords=tuple(str(k).strip() for k in entry.get("keywords", []) if str(k).strip()),
        )
    return profiles


def parse_units(text: str) -> tuple[dict[str, str], dict[str, str]]:
    organismo: dict[str, str] = {}
    acronym: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(text)):
        unit = (row.get("institucion_nombre") or "").strip()
        if not unit:
            continue
        organismo[unit] = (row.get("organismo") or unit).strip()
        acronym[unit] = (row.get("sigla") or "").strip()
    return organismo, acronym


def load_directory(profiles_path: Path | None = None) -> AgencyDirectory:
    text = profiles_path.read_text(encoding="utf-8") if profiles_path else _read_data("agency_profiles.toml")
    organismo, acronym = parse_units(_read_data("units.csv"))
    return AgencyDirectory(parse_profiles(text), organismo, acronym)


@lru_cache(maxsize=1)
def default_directory() -> AgencyDirectory:
    return load_directory()


# Acronyms of 3+ letters that are also ordinary words or expanded by the normalizer; never taken as a mention.
_AMBIGUOUS_ACRONYMS = frozenset({"dni", "dna", "ine", "inc", "anc", "ain", "mec"})


def mention_phrases(directory: AgencyDirectory) -> dict[tuple[str, ...], str]:
    """Normalized phrases that name a body explicitly (acronyms, all-caps aliases, full names) → its top-level body.

    A message that names a body ("BPS", "@UTE_Uy", "Banco de Seguros del Estado") is almost always about it."""
    from classifier.normalize import basic_normalize

    out: dict[tuple[str, ...], str] = {}

    def add(phrase: str, organismo: str | None) -> None:
        tokens = tuple(basic_normalize(phrase).split())
        if not tokens or not organismo:
            return
        if len(tokens) == 1 and (len(tokens[0]) < 3 or tokens[0] in _AMBIGUOUS_ACRONYMS):
            return
        out.setdefault(tokens, organismo)

    names = list(directory.profiles) + list(directory.unit_organismo)
    for name in names:
        org = directory.organismo_of(name)
        if len(name.split()) >= 3:
            add(name, org)
        acronym = directory.acronym_of(name)
        if acronym and acronym.isupper():
            add(acronym, org)
        profile = directory.profile(name)
        for alias in profile.aliases if profile else ():
            if alias.isupper() or len(alias.split()) >= 3:
                add(alias, org)
    return out
