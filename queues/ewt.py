"""Estimated wait time (pure): a forecast from live handle times, staffing and position.

Why not 'the average wait of those waiting now': that figure lags (it describes contacts that
arrived under yesterday's staffing) and says nothing about *this* contact's place. Instead, with
``slots`` agents' worth of capacity serving the queue and contacts ahead of us, the k-th next
free slot appears after about ``k * handle_time / slots`` (each slot frees on average every
``handle_time``). Contacts that free slots take at once are not waiting at all.

The forecast is only announced when the error measured on recent contacts is small enough
(``AccuracyTracker.announceable``); the simulation benchmark prints the same error as ``ewt_mae_s``.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from queues.config import EwtSettings


def forecast_wait_s(position: int, staffed_slots: int, free_slots: int, handle_time_s: float) -> float | None:
    """Expected seconds until the contact at ``position`` (1 = next) is offered.

    Returns None when nobody who could serve the queue is working (no honest number exists).
    """
    if staffed_slots <= 0:
        return None
    ahead_of_free = position - free_slots
    if ahead_of_free <= 0:
        return 0.0
    return ahead_of_free * handle_time_s / staffed_slots


@dataclass
class HandleTimes:
    """Live handle time per (queue, channel) as an exponentially weighted mean."""

    settings: EwtSettings
    _means: dict[tuple[str, str], float] = field(default_factory=dict)

    def observe(self, queue: str, channel: str, seconds: float) -> None:
        key = (queue, channel)
        previous = self._means.get(key)
        alpha = self.settings.smoothing
        self._means[key] = seconds if previous is None else (1 - alpha) * previous + alpha * seconds

    def mean_s(self, queue: str, channel: str) -> float:
        return self._means.get((queue, channel), self.settings.handle_time_prior_s)


@dataclass
class AccuracyTracker:
    """Recent absolute errors of the forecast per queue; decides whether announcing is honest."""

    settings: EwtSettings
    _errors: dict[str, deque] = field(default_factory=dict)

    def record(self, queue: str, predicted_s: float, actual_s: float) -> None:
        errors = self._errors.setdefault(queue, deque(maxlen=self.settings.window))
        errors.append(abs(predicted_s - actual_s))

    def mae_s(self, queue: str) -> float | None:
        errors = self._errors.get(queue)
        if not errors:
            return None
        return sum(errors) / len(errors)

    def samples(self, queue: str) -> int:
        return len(self._errors.get(queue, ()))

    def announceable(self, queue: str) -> bool:
        """True once enough contacts were measured and their mean error is within the limit."""
        mae = self.mae_s(queue)
        return (mae is not None and self.samples(queue) >= self.settings.min_samples
                and mae <= self.settings.max_mae_s)
