"""Settings sections of the service-quality plugin: [sla], [assignment], [csat], [retention], [transparency], [metrics].

Every key is documented, with its default, in settings.toml."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import date

from inbox.settings import SettingsError, secret

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_WILD = "*"


@dataclass
class SLAPolicy:
    """Targets in business hours. ``queue``, ``priority`` and ``channel`` are a value or "*"; the most specific
    matching policy wins."""

    name: str = "normal"
    queue: str = _WILD
    priority: str = _WILD
    channel: str = _WILD
    first_response_h: float = 8.0
    next_response_h: float = 16.0
    resolution_h: float = 40.0

    def specificity(self) -> int:
        return sum(1 for v in (self.queue, self.priority, self.channel) if v != _WILD)

    def matches(self, queue: str | None, priority: str, channel: str) -> bool:
        return (
            self.queue in (_WILD, queue or "")
            and self.priority in (_WILD, priority)
            and self.channel in (_WILD, channel)
        )


def _default_policies() -> list[SLAPolicy]:
    return [
        SLAPolicy("urgent", priority="urgent", first_response_h=1, next_response_h=2, resolution_h=8),
        SLAPolicy("high", priority="high", first_response_h=4, next_response_h=8, resolution_h=24),
        SLAPolicy("normal", first_response_h=8, next_response_h=16, resolution_h=40),
        SLAPolicy("low", priority="low", first_response_h=16, next_response_h=24, resolution_h=80),
    ]


@dataclass
class SLASettings:
    enabled: bool = True
    timezone: str = "America/Montevideo"
    workdays: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])  # ISO weekdays, 1 = Monday
    open_time: str = "09:00"
    close_time: str = "17:00"
    holiday_country: str = "UY"
    holiday_categories: list[str] = field(default_factory=lambda: ["public"])
    # Names (English, as the `holidays` package spells them) of holidays in other categories that also close the centre.
    extra_holiday_names: list[str] = field(default_factory=lambda: ["Carnival", "Tourism Week"])
    extra_closed_days: list[str] = field(default_factory=list)  # "YYYY-MM-DD"
    warn_before_h: float = 1.0  # business hours before a target is due
    supervisors: dict[str, str] = field(default_factory=dict)  # queue -> supervisor email
    default_supervisor: str = ""
    policies: list[SLAPolicy] = field(default_factory=_default_policies)

    def validate(self) -> None:
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"sla.timezone: unknown time zone {self.timezone!r}") from None
        for key in ("open_time", "close_time"):
            if not _HHMM.match(getattr(self, key)):
                raise SettingsError(f"sla.{key}: expected HH:MM, got {getattr(self, key)!r}")
        if self.open_time >= self.close_time:
            raise SettingsError("sla.close_time: must be after sla.open_time")
        for d in self.workdays:
            if not 1 <= d <= 7:
                raise SettingsError(f"sla.workdays: ISO weekdays are 1..7, got {d}")
        for day in self.extra_closed_days:
            try:
                date.fromisoformat(day)
            except ValueError:
                raise SettingsError(f"sla.extra_closed_days: expected YYYY-MM-DD, got {day!r}") from None
        for i, p in enumerate(self.policies):
            for key in ("first_response_h", "next_response_h", "resolution_h"):
                if getattr(p, key) <= 0:
                    raise SettingsError(f"sla.policies[{i}].{key}: must be positive")
        if self.warn_before_h < 0:
            raise SettingsError("sla.warn_before_h: must not be negative")


@dataclass
class AssignmentSettings:
    enabled: bool = True
    strategy: str = "round_robin"  # round_robin | least_loaded
    default_capacity: int = 10  # when a user doc has no capacity
    load_statuses: list[str] = field(default_factory=lambda: ["new", "open", "pending"])
    assign_statuses: list[str] = field(default_factory=lambda: ["new", "open"])
    assign_roles: list[str] = field(default_factory=lambda: ["agent"])
    channel_queues: dict[str, str] = field(default_factory=dict)  # channel -> queue, for tickets without a queue
    default_queue: str = ""  # queue of tickets that have none (empty: they wait for triage or an agent)
    wait_for_triage_s: float = 60.0
    presence_stale_s: float = 120.0  # an "online" presence not refreshed for this long counts as offline
    offline_grace_s: float = 600.0  # reassign an offline agent's tickets after this long
    sweep_interval_s: float = 15.0  # period of the quality tick (event tail, sweeps)

    def validate(self) -> None:
        if self.strategy not in ("round_robin", "least_loaded"):
            raise SettingsError(f"assignment.strategy: 'round_robin' or 'least_loaded', got {self.strategy!r}")
        if self.default_capacity < 0:
            raise SettingsError("assignment.default_capacity: must not be negative")
        if self.sweep_interval_s < 1:
            raise SettingsError("assignment.sweep_interval_s: at least 1 second")


DEFAULT_EMAIL_TEXT = (
    "Hola:\n\nSu consulta #{number} fue resuelta. ¿Cómo calificaría la atención recibida? "
    "Responder lleva un minuto (una pregunta, del 1 al 5):\n\n{link}\n\n"
    "El enlace vence en {days} días. Gracias por ayudarnos a mejorar.\n\nAtención a la Ciudadanía"
)
DEFAULT_SHORT_TEXT = "Su consulta #{number} fue resuelta. ¿Cómo calificaría la atención? (1 a 5): {link}"


@dataclass
class CSATSettings:
    enabled: bool = True
    channels: list[str] = field(default_factory=lambda: ["email", "web", "x", "messenger"])
    delay_s: float = 300.0  # wait after resolution (a quick reopen cancels the survey)
    link_valid_days: int = 30
    require_reply: bool = True  # no survey for tickets closed without any reply
    email_text: str = DEFAULT_EMAIL_TEXT
    short_text: str = DEFAULT_SHORT_TEXT

    def validate(self) -> None:
        for key in ("email_text", "short_text"):
            if "{link}" not in getattr(self, key):
                raise SettingsError(f"csat.{key}: must contain {{link}}")
        if self.link_valid_days < 1:
            raise SettingsError("csat.link_valid_days: at least 1")


@dataclass
class RetentionPolicy:
    channel: str = _WILD
    months: int = 24
    action: str = "anonymize"  # anonymize | delete


@dataclass
class RetentionSettings:
    enabled: bool = False
    policies: list[RetentionPolicy] = field(default_factory=list)
    run_interval_h: float = 24.0
    placeholder: str = "[anonimizado]"
    batch_size: int = 200

    def validate(self) -> None:
        for i, p in enumerate(self.policies):
            if p.action not in ("anonymize", "delete"):
                raise SettingsError(f"retention.policies[{i}].action: 'anonymize' or 'delete', got {p.action!r}")
            if p.months < 1:
                raise SettingsError(f"retention.policies[{i}].months: at least 1")


@dataclass
class TransparencySettings:
    enabled: bool = True
    min_count: int = 10  # cells counting fewer tickets/answers than this are hidden
    months: int = 12
    cache_s: float = 300.0

    def validate(self) -> None:
        if self.min_count < 1:
            raise SettingsError("transparency.min_count: at least 1")
        if not 1 <= self.months <= 120:
            raise SettingsError("transparency.months: 1..120")


@dataclass
class MetricsSettings:
    enabled: bool = True
    token: str = secret()  # INBOX_METRICS__TOKEN: when set, /metrics requires "Authorization: Bearer <token>"


SECTIONS = {
    "sla": SLASettings,
    "assignment": AssignmentSettings,
    "csat": CSATSettings,
    "retention": RetentionSettings,
    "transparency": TransparencySettings,
    "metrics": MetricsSettings,
}
