"""Classifier settings: abstain thresholds (default and per label), top-k, routing."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SETTINGS_FILE = "classifier.toml"


@dataclass(frozen=True)
class ClassifierSettings:
    """Thresholds are on the probability of the best candidate: below it, the model abstains for that output.

    ``tramite_thresholds`` / ``agency_thresholds`` override the default for one label (a trámite key, an agency name);
    ``None`` (no trámite fits / unknown message) is configured with the key ``"none"``.
    """

    tramite_threshold: float = 0.5
    agency_threshold: float = 0.5
    tramite_thresholds: dict[str, float] = field(default_factory=dict)
    agency_thresholds: dict[str, float] = field(default_factory=dict)
    top_k: int = 3
    route: bool = True  # triage: move confident tickets to the agency's queue
    queue_prefix: str = ""  # queue name = prefix + top-level body name

    def tramite_threshold_for(self, key: str | None) -> float:
        return self.tramite_thresholds.get(key or "none", self.tramite_threshold)

    def agency_threshold_for(self, name: str | None) -> float:
        return self.agency_thresholds.get(name or "none", self.agency_threshold)

    def queue_for(self, organismo: str | None, agency: str | None) -> str | None:
        target = organismo or agency
        return f"{self.queue_prefix}{target}" if target else None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> ClassifierSettings:
        data = dict(data or {})
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name in ("tramite_thresholds", "agency_thresholds"):
            if name in known:
                known[name] = {str(k): float(v) for k, v in dict(known[name]).items()}
        return cls(**known)

    @classmethod
    def load(cls, data_dir: Path | str | None) -> ClassifierSettings:
        """``<data_dir>/classifier.toml`` when present, else the defaults."""
        if data_dir is not None:
            path = Path(data_dir) / SETTINGS_FILE
            if path.exists():
                return cls.from_mapping(tomllib.loads(path.read_text(encoding="utf-8")))
        return cls()
