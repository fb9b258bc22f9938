"""The ``ivr:`` section of config.yaml: the IVR menu graph. Extended by the IVR engine work."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IvrConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entry: str = "welcome"
    nodes: dict[str, dict] = Field(default_factory=dict)
