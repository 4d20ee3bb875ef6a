"""What could be said: candidate tips from sources registered independently by name.

A source is a pure function `(features, moment, at) -> Sequence[Tip]`. The
built-in ones are `todos` (open tasks, most pressing first), `habits` (a habit
due now and not done today) and `advice` (the catalogue, filtered by moment
and conditions). `gather` asks each source in registration order, keeps only
the kinds the person wants, drops the tip already on screen and duplicates,
and returns a deterministic tuple (a seeded policy depends on the order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from domain.catalogue import Catalogue, default_catalogue
from domain.clock import epoch, hhmm, minute_of_day, time_of_day
from domain.features import (
    ADVICE_TIP_PREFIX,
    HABIT_TIP_PREFIX,
    TODO_TIP_PREFIX,
    Habit,
    Todo,
    UserFeatures,
)
from domain.moments import LOW_MOOD_AT_MOST, Moment

MAX_TODO_CANDIDATES = 3
# A low mood counts for advice conditions for this long after it was logged.
MOOD_FRESH_S = 6 * 3600
# "After a meeting" for advice conditions: a busy event ended this recently.
AFTER_MEETING_S = 60 * 60
# Habits due "now" for moments other than their own window.
HABIT_NEAR_S = 45 * 60
# Advice is not repeated within a day, nor offered for a week after a dismissal.
ADVICE_REPEAT_AFTER_S = 24 * 3600
DISMISSED_REST_S = 7 * 24 * 3600
TODO_DISMISSED_REST_S = 12 * 3600
# Moments where a task fits; a low mood is not the time to push work.
TODO_MOMENTS = frozenset({"app_opened", "morning_start", "free_after_meeting", "todo_due_soon"})
HABIT_MOMENTS = frozenset({"app_opened", "morning_start", "free_after_meeting", "habit_window"})


@dataclass(frozen=True)
class Tip:
    """A candidate: a todo (task or habit, something to do) or an advice.

    Same fields as `topics.records.Tip`; `to_dict()` is its keyword arguments.
    """

    id: str
    kind: Literal["todo", "advice"]
    title: str
    body: str
    source: str
    deep_link: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the fields of `topics.records.Tip`."""
        return {"id": self.id, "kind": self.kind, "title": self.title, "body": self.body,
                "source": self.source, "deep_link": self.deep_link, "meta": dict(self.meta)}


Source = Callable[[UserFeatures, Moment, float], Sequence[Tip]]


class SourceRegistry:
    """Candidate sources by name, asked in registration order."""

    def __init__(self) -> None:
        self._sources: dict[str, Source] = {}

    def register(self, name: str, source: Source, *, replace: bool = False) -> None:
        """Add `source` as `name`; registering a taken name needs `replace=True`."""
        if name in self._sources and not replace:
            raise ValueError(f"candidate source {name!r} is already registered")
        self._sources[name] = source

    def get(self, name: str) -> Source:
        """The source called `name` (KeyError if none)."""
        return self._sources[name]

    def names(self) -> tuple[str, ...]:
        """Registered names, in the order sources are asked."""
        return tuple(self._sources)


SOURCES = SourceRegistry()


def register_source(name: str, source: Source, *, replace: bool = False) -> None:
    """Register `source` in the default registry as `name`."""
    SOURCES.register(name, source, replace=replace)


def gather(features: UserFeatures, moment: Moment, now: datetime, *,
           sources: Sequence[str] | None = None,
           registry: SourceRegistry = SOURCES) -> tuple[Tip, ...]:
    """Every candidate for `moment` at `now`, from `sources` (default: all registered).

    Keeps the kinds the person accepts, never re-offers the tip on screen, and
    keeps the first of duplicate ids.
    """
    at = epoch(now)
    showing = features.showing.tip_id if features.showing is not None else None
    wanted = features.prefs.kinds
    seen: set[str] = set()
    tips: list[Tip] = []
    for name in sources if sources is not None else registry.names():
        for tip in registry.get(name)(features, moment, at):
            if tip.kind in wanted and tip.id != showing and tip.id not in seen:
                seen.add(tip.id)
                tips.append(tip)
    return tuple(tips)


# --- built-in sources --------------------------------------------------------


def _recent(features: UserFeatures, reaction: str, since: float) -> set[str]:
    return {r.tip_id for r in features.reactions if r.reaction == reaction and r.at >= since}


def todo_tips(features: UserFeatures, moment: Moment, at: float) -> Sequence[Tip]:
    """Open todos: the one due soon for `todo_due_soon`, else the most pressing few.

    Untitled todos are left out (a tip must say what to do); so are todos
    dismissed in the last TODO_DISMISSED_REST_S, except the one now due soon.
    """
    if moment.name not in TODO_MOMENTS:
        return ()
    if moment.name == "todo_due_soon":
        todo = features.todos.get(moment.ref or "")
        return (_todo_tip(features, todo, at),) if todo is not None and todo.title else ()
    rested = _recent(features, "dismiss", at - TODO_DISMISSED_REST_S)
    ranked = [t for t in features.open_todos_ranked()
              if t.title and TODO_TIP_PREFIX + t.id not in rested]
    return tuple(_todo_tip(features, t, at) for t in ranked[:MAX_TODO_CANDIDATES])


def _todo_tip(features: UserFeatures, todo: Todo, at: float) -> Tip:
    return Tip(TODO_TIP_PREFIX + todo.id, "todo", todo.title or "", _due_text(features, todo, at),
               "todos", None, {"task_id": todo.id, "due_at": todo.due_at,
                               "priority": todo.priority})


def _due_text(features: UserFeatures, todo: Todo, at: float) -> str:
    if todo.due_at is None:
        return ""
    due, today = features.local_time(todo.due_at), features.local_time(at).date()
    if todo.due_at < at:
        return f"Overdue since {due:%Y-%m-%d %H:%M}."
    if due.date() == today:
        return f"Due today at {due:%H:%M}."
    if due.date() == today + timedelta(days=1):
        return f"Due tomorrow at {due:%H:%M}."
    return f"Due {due:%A %Y-%m-%d} at {due:%H:%M}."


def habit_tips(features: UserFeatures, moment: Moment, at: float) -> Sequence[Tip]:
    """The habit of a `habit_window`, or habits due within HABIT_NEAR_S, not done today."""
    if moment.name not in HABIT_MOMENTS:
        return ()
    if moment.name == "habit_window":
        habit = features.habits.get(moment.ref or "")
        habits = [habit] if habit is not None else []
    else:
        minute = minute_of_day(features.local_time(at))
        habits = [h for h in features.habits if h.usual_minute is not None
                  and _minutes_apart(h.usual_minute, minute) * 60 <= HABIT_NEAR_S]
    return tuple(_habit_tip(h) for h in habits if not features.habit_settled_on_day_of(h, at))


def _minutes_apart(a: int, b: int) -> int:
    gap = abs(a - b) % (24 * 60)
    return min(gap, 24 * 60 - gap)  # across midnight too


def _habit_tip(habit: Habit) -> Tip:
    name = habit.name or "your habit"
    usual = f"Your usual time is {hhmm(habit.usual_minute)}." if habit.usual_minute is not None \
        else ""
    streak = f" Keep your {habit.streak}-day streak going." if habit.streak > 1 else ""
    return Tip(HABIT_TIP_PREFIX + habit.id, "todo", f"Time for {name}"[:500],
               (usual + streak).strip(), "habits", None,
               {"habit_id": habit.id, "streak": habit.streak, "usual_minute": habit.usual_minute})


def advice_tips(features: UserFeatures, moment: Moment, at: float,
                catalogue: Catalogue | None = None) -> Sequence[Tip]:
    """Catalogue advices fitting the moment, mood, local time of day and meeting context.

    Advice given in the last ADVICE_REPEAT_AFTER_S or dismissed in the last
    DISMISSED_REST_S is left out.
    """
    catalogue = catalogue or default_catalogue()
    mood_low = (features.mood_score is not None and features.mood_score <= LOW_MOOD_AT_MOST
                and features.mood_at is not None and at - features.mood_at <= MOOD_FRESH_S)
    ended = features.last_ended_event(at)
    after_meeting = ended is not None and at - ended.ends_at <= AFTER_MEETING_S
    given = {g.tip_id for g in features.recent_tips if g.at >= at - ADVICE_REPEAT_AFTER_S}
    rested = given | _recent(features, "dismiss", at - DISMISSED_REST_S)
    fitting = catalogue.matching(moment.name, mood_low=mood_low,
                                 time_of_day=time_of_day(features.local_time(at)),
                                 after_meeting=after_meeting)
    return tuple(
        Tip(ADVICE_TIP_PREFIX + a.id, "advice", a.title, a.body, "advice", None,
            {"advice_id": a.id, "topic": a.topic})
        for a in fitting if ADVICE_TIP_PREFIX + a.id not in rested)


register_source("todos", todo_tips)
register_source("habits", habit_tips)
register_source("advice", advice_tips)
