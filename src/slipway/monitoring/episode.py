"""Drift episodes as a pure function: a retrain starts once per episode, not once per alarm.

An episode opens at the first alarming window for the serving champion and closes at the next window
without alarm; it lives in tags on the champion's version, so a new champion starts with none.

Rules:
1. No alarm: an open episode closes; nothing starts.
2. Alarm while an episode is open for this champion: nothing starts (the same drift, already handled).
3. Alarm and no open episode: the episode opens with this report's id and one retrain starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from slipway.names import Tag

CLOSED: Final = ""


@dataclass(frozen=True)
class EpisodeStep:
    """What one monitor run does to the episode: retrain or not, the tags to write, and why."""

    retrain: bool
    rule: int
    tags: dict[str, str]
    reason: str
    episode: str  # the open episode's report id after this step ("" when closed)


def episode_step(*, alarm: bool, tags: dict[str, str], report_id: str) -> EpisodeStep:
    """Pure; the rules of the module docstring over the champion's tags."""
    open_id = tags.get(Tag.MONITOR_EPISODE, CLOSED)
    if not alarm:
        reason = f"no alarm: episode {open_id} closed" if open_id else "no alarm, no episode open"
        return EpisodeStep(
            retrain=False,
            rule=1,
            tags={Tag.MONITOR_EPISODE: CLOSED} if open_id else {},
            reason=reason,
            episode="",
        )
    if open_id:
        reason = (
            f"alarm in episode {open_id} (opened by that report), its retrain already started: none started"
        )
        return EpisodeStep(retrain=False, rule=2, tags={}, reason=reason, episode=open_id)
    return EpisodeStep(
        retrain=True,
        rule=3,
        tags={Tag.MONITOR_EPISODE: report_id},
        reason=f"alarm opens episode {report_id}: retrain started",
        episode=report_id,
    )
