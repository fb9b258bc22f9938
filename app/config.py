"""Settings: the one place environment variables and config.yaml are read and validated.

Two sources, two models:
- ``EnvSettings``: deployment facts from the environment (where the database is, secrets).
- ``DeskConfig``: the desk's behaviour from config.yaml (menus, queues, rules), each section typed by
  the domain that owns it, so a wrong key fails at start-up with the key's path, the value and what
  was expected -- never later, mid-call.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
import importlib

from app.auth.config import SecurityConfig
from app.calendars import CalendarConfig
from app.complaints.config import ComplaintsConfig
from app.channels.email.config import EmailConfig
from app.crm.config import CrmConfig
from app.reports.config import ReportsConfig
from app.portal.config import ChatConfig, PortalConfig
from ivr.config import IvrConfig
from queues.config import RoutingConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "config.yaml"
LANGUAGES = ("en", "zh")


class ConfigError(Exception):
    """config.yaml or the environment is wrong; ``problems`` lists each as 'key: message'."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source} is invalid:\n" + "\n".join(f"  - {p}" for p in problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeskSection(Strict):
    name: str = "Service Desk"
    timezone: str = "UTC"
    default_language: Literal["en", "zh"] = "en"
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    max_request_bytes: int = Field(default=16 * 1024 * 1024, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class Disposition(Strict):
    """A coded choice shown to people in both languages (wrap-up dispositions, break reasons)."""

    code: str = Field(pattern=r"^[a-z0-9_]+$")
    label_en: str
    label_zh: str


def _default_break_reasons() -> list[Disposition]:
    return [Disposition(code="lunch", label_en="Lunch", label_zh="午餐"),
            Disposition(code="short_break", label_en="Short break", label_zh="短暂休息"),
            Disposition(code="training", label_en="Training", label_zh="培训"),
            Disposition(code="meeting", label_en="Meeting", label_zh="会议"),
            Disposition(code="coaching", label_en="Coaching", label_zh="辅导"),
            Disposition(code="technical", label_en="Technical problem", label_zh="技术问题")]


class DeskConfig(Strict):
    desk: DeskSection = DeskSection()
    calendars: dict[str, CalendarConfig] = Field(default_factory=lambda: {"default": CalendarConfig()})
    routing: RoutingConfig = RoutingConfig()
    ivr: IvrConfig = IvrConfig()
    crm: CrmConfig = CrmConfig()
    complaints: ComplaintsConfig = ComplaintsConfig()
    dispositions: list[Disposition] = Field(default_factory=list)
    break_reasons: list[Disposition] = Field(default_factory=_default_break_reasons)
    reports: ReportsConfig = ReportsConfig()
    email: EmailConfig = EmailConfig()
    portal: PortalConfig = PortalConfig()
    chat: ChatConfig = ChatConfig()
    security: SecurityConfig = SecurityConfig()

    @model_validator(mode="after")
    def _cross_section_checks(self) -> DeskConfig:
        """Checks that span sections (an IVR node naming a queue, a queue naming a calendar)."""
        for ref in CROSS_CHECKS:
            module, attr = ref.split(":")
            getattr(importlib.import_module(module), attr)(self)  # raises ValueError naming the key
        return self


# Each domain adds "module:function(config)" raising ValueError("section.key: what is wrong").
CROSS_CHECKS: list[str] = [
    "app.config:check_calendars_known",
    "app.crm.config:check_follow_up_queues",
    "ivr.validation:check_ivr_against_desk",
    "app.channels.email.config:check_email_against_desk",
    "app.portal.config:check_portal_queues",
    "app.complaints.config:check_notice_mailbox",
    "app.complaints.config:check_email_intake_mailboxes",
]


def check_calendars_known(config: DeskConfig) -> None:
    for queue in config.routing.queues:
        if queue.calendar not in config.calendars:
            raise ValueError(f"routing.queues.{queue.name}.calendar: unknown calendar {queue.calendar!r}")
    if config.complaints.calendar not in config.calendars:
        raise ValueError(f"complaints.calendar: unknown calendar {config.complaints.calendar!r}")


class EnvSettings(Strict):
    """Environment variables. Absent DATABASE_URL/REDIS_URL select the embedded default."""

    database_url: str | None = None
    redis_url: str | None = None
    secret_key: str | None = None
    public_base_url: str | None = None  # default: http://localhost:<PORT>
    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: str = "dev-auth-token-not-secret"
    # The browser softphone's access tokens are signed with an API key and name a TwiML app.
    twilio_api_key_sid: str | None = None
    twilio_api_key_secret: str | None = None
    twilio_twiml_app_sid: str | None = None
    port: int = Field(default=5000, ge=1, le=65535)
    # Connections each process may keep open to a server database (opened as needed, then kept), and how
    # many more it may open at a peak (each closed again when handed back to a full pool). A gevent worker
    # serves hundreds of sockets with one pool: connections beyond the kept ones are opened and closed on
    # every burst -- a PostgreSQL backend forked, its caches cold, its prepared statements gone, the
    # burst made longer (~150 per 15 s of the voice bench with 10 kept and 20 more). So all 30 are kept.
    database_pool_size: int = Field(default=30, ge=1, le=500)
    database_max_overflow: int = Field(default=0, ge=0, le=1000)
    dev_tools: bool | None = None  # the phone simulator and other demo aids; on when embedded
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _default_public_url(self) -> EnvSettings:
        if self.public_base_url is None:
            object.__setattr__(self, "public_base_url", f"http://localhost:{self.port}")
        return self

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def dev_tools_enabled(self) -> bool:
        return self.embedded if self.dev_tools is None else self.dev_tools


ENV_KEYS = {
    "DATABASE_URL": "database_url",
    "REDIS_URL": "redis_url",
    "SECRET_KEY": "secret_key",
    "PUBLIC_BASE_URL": "public_base_url",
    "TWILIO_ACCOUNT_SID": "twilio_account_sid",
    "TWILIO_AUTH_TOKEN": "twilio_auth_token",
    "TWILIO_API_KEY_SID": "twilio_api_key_sid",
    "TWILIO_API_KEY_SECRET": "twilio_api_key_secret",
    "TWILIO_TWIML_APP_SID": "twilio_twiml_app_sid",
    "PORT": "port",
    "DATABASE_POOL_SIZE": "database_pool_size",
    "DATABASE_MAX_OVERFLOW": "database_max_overflow",
    "DESK_DEV_TOOLS": "dev_tools",
    "LOG_LEVEL": "log_level",
}


def _describe(errors: list[dict[str, Any]], key_prefix: str = "") -> list[str]:
    problems = []
    for err in errors:
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "missing":
            problems.append(f"{key_prefix}{key}: required key is missing")
            continue
        value = err.get("input")
        shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
        problems.append(f"{key_prefix}{key}: got {shown[:80]}; expected {err['msg'].lower()}")
    return problems


def load_desk_config(path: str | os.PathLike | None = None) -> DeskConfig:
    """Read and validate config.yaml. Raises ConfigError naming every bad key."""
    path = Path(path or os.environ.get("CONFIG_PATH") or DEFAULT_CONFIG_PATH)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(str(path), [f"file not found ({exc.strerror})"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise ConfigError(str(path), ["(top level): expected a mapping of sections"])
    try:
        return DeskConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(str(path), _describe(exc.errors())) from exc


def load_env_settings(environ: dict[str, str] | None = None) -> EnvSettings:
    """Read the environment variables the desk knows. Raises ConfigError naming the variable."""
    environ = os.environ if environ is None else environ
    values = {field: environ[var] for var, field in ENV_KEYS.items() if environ.get(var)}
    try:
        return EnvSettings.model_validate(values)
    except ValidationError as exc:
        by_field = {field: var for var, field in ENV_KEYS.items()}
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            err = dict(err, loc=(by_field.get(field, field),))
            problems.extend(_describe([err]))
        raise ConfigError("environment", problems) from exc
