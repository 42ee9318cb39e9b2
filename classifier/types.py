"""Plain typed dataclasses at the classifier's boundary (used by the triage worker, the web app and the CLI)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

NO_TRAMITE = "__none__"  # internal label: no catalogue trámite fits
UNKNOWN = "__unknown__"  # internal label: spam, thanks-only, off-topic


@dataclass(frozen=True)
class LabelledExample:
    """An agent-confirmed ticket: its text and the trámite key / agency name an agent set (None = none fits)."""

    text: str
    tramite: str | None = None
    agency: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class TramiteCandidate:
    key: str | None  # None: no catalogue trámite fits
    name: str | None
    organismo: str | None
    agency: str | None
    p: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AgencyCandidate:
    name: str | None  # None: unknown (spam, thanks, off-topic)
    organismo: str | None
    p: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Prediction:
    tramite: list[TramiteCandidate]  # top-k, best first
    agency: list[AgencyCandidate]  # top-k, best first
    abstain_tramite: bool
    abstain_agency: bool
    unknown: bool  # the message is spam / thanks-only / off-topic
    terms: list[str]  # the words that drove the decision
    model_version: str

    @property
    def best_tramite(self) -> TramiteCandidate | None:
        return self.tramite[0] if self.tramite else None

    @property
    def best_agency(self) -> AgencyCandidate | None:
        return self.agency[0] if self.agency else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tramite": [c.to_dict() for c in self.tramite],
            "agency": [c.to_dict() for c in self.agency],
            "abstain": {"tramite": self.abstain_tramite, "agency": self.abstain_agency},
            "unknown": self.unknown,
            "terms": list(self.terms),
            "model_version": self.model_version,
        }


@dataclass
class ModelInfo:
    version: str
    created: str
    active: bool = False
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        return cls(
            version=d["version"],
            created=d.get("created", ""),
            active=bool(d.get("active", False)),
            training=dict(d.get("training") or {}),
            metrics=dict(d.get("metrics") or {}),
            params=dict(d.get("params") or {}),
        )
