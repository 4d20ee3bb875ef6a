"""Per-user feature state and the pure fold of signals, decisions and feedback into it.

`fold(state, event, domain)` returns the new state and whether the event
changed anything. Re-delivered events (same `event_id`, within the
idempotency window) change nothing, which is what makes at-least-once
delivery safe for the features table. `apply_decision` and `apply_feedback`
fold the engine's own decisions and the person's reactions, idempotent on the
decision id (and reaction); reactions also update the learned statistics
(`UserFeatures.learned`, see `domain.learning`).

Instants are stored as whole epoch seconds (ints, UTC) everywhere in this state;
local days are ISO date strings in the person's time zone. Collections are
tuples of small named tuples, bounded, and kept in their stored form until a
rule reads them (see `Rows`), because the features agent loads, folds and
stores the whole state for every single signal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import itemgetter
from typing import Any, Generic, NamedTuple, TypeVar

from domain.clock import day_before, is_known_zone, local, local_date, minute_of_day, seconds
from domain.learning import Learned, Sent, timing_bucket

IDEMPOTENCY_WINDOW = 64
MAX_OPEN_TODOS = 100
MAX_HABITS = 50
MAX_CALENDAR_EVENTS = 64
MAX_TOMBSTONES = 128
MAX_REACTIONS = 24
MAX_RECENT_TIPS = 12
# Ended meetings are kept a while: "free after a meeting" needs the one that just ended.
CALENDAR_KEEP_ENDED_S = 6 * 3600
FATIGUE_HALF_LIFE_S = 12 * 3600
FORMAT_VERSION = 3

KINDS = ("todo", "advice")
REACTIONS = ("delivered", "seen", "done", "ack", "save", "snooze", "dismiss", "ignored")
# Reactions that close the tip on the person's screen; delivered/seen leave it showing.
ANSWERS = frozenset({"done", "ack", "save", "snooze", "dismiss", "ignored"})
# How much each reaction tires (positive) or re-engages (negative) the person.
FATIGUE_DELTA = {"dismiss": 1.0, "ignored": 0.5, "snooze": 0.25,
                 "done": -0.5, "ack": -0.25, "save": -0.25}

# Tip ids name their origin, so feedback can act on it (a done todo closes the todo).
TODO_TIP_PREFIX = "todo:"
HABIT_TIP_PREFIX = "habit:"
ADVICE_TIP_PREFIX = "advice:"


class Todo(NamedTuple):
    """An open task. `changed_at` is the event time of the last change applied."""

    id: str
    title: str | None
    due_at: int | None
    priority: int  # 1 (normal) .. 4 (urgent), Todoist's API convention
    changed_at: int


class Habit(NamedTuple):
    """A habit the person keeps; days are local ISO dates."""

    id: str
    name: str | None
    usual_minute: int | None  # local minutes after midnight
    streak: int
    last_done_on: str | None
    skipped_on: str | None
    changed_at: int


class CalendarEvent(NamedTuple):
    """A calendar event that is upcoming, current, or ended recently."""

    id: str
    starts_at: int
    ends_at: int
    busy: bool
    changed_at: int


class Tombstone(NamedTuple):
    """Something closed or removed at `at`, so a late, older event cannot bring it back."""

    key: str  # "task:<id>", "habit:<id>" or "calendar:<id>"
    at: int


class Reaction(NamedTuple):
    """One reaction of the person to a tip."""

    decision_id: str
    tip_id: str
    reaction: str
    at: int


class GivenTip(NamedTuple):
    """A tip the engine decided to give (also the idempotency memory of decisions)."""

    decision_id: str
    tip_id: str
    kind: str
    at: int


class ShowingTip(NamedTuple):
    """The tip on the person's screen, unanswered until it expires."""

    decision_id: str
    tip_id: str
    kind: str
    expires_at: int


class Preferences(NamedTuple):
    """The person's preferences; `changed_at` orders lifecycle events."""

    time_zone: str = "UTC"
    quiet_start_minute: int = 22 * 60
    quiet_end_minute: int = 7 * 60
    daily_budget: int = 3
    kinds: tuple[str, ...] = KINDS
    changed_at: int | None = None


R = TypeVar("R", bound=tuple[Any, ...])


class Rows(Generic[R]):
    """An immutable, keyed sequence of rows, decoded from its stored form only when read.

    Every row type here has its key (an id) first. The features agent loads,
    folds and stores a whole state per signal, and most signals touch one
    collection at most: the others pass from `from_dict` to `to_dict` in their
    stored form (JSON arrays), and keyed edits (`put`, `without`) work on that
    form without decoding every row. The stored rows are owned by this object
    and never mutated.
    """

    __slots__ = ("_kind", "_stored", "_rows")

    def __init__(self, kind: type[R], stored: Sequence[Sequence[Any]] = ()) -> None:
        self._kind = kind
        self._stored = stored
        self._rows: tuple[R, ...] | None = None

    @classmethod
    def of(cls, kind: type[R], rows: Iterable[R]) -> Rows[R]:
        """Rows holding already-decoded `rows`."""
        made = cls(kind, tuple(rows))
        made._rows = made._stored  # type: ignore[assignment]
        return made

    @property
    def rows(self) -> tuple[R, ...]:
        """All rows, decoded."""
        if self._rows is None:
            kind = self._kind
            self._rows = tuple([row if type(row) is kind else tuple.__new__(kind, row)
                                for row in self._stored])
        return self._rows

    def stored(self) -> Sequence[Sequence[Any]]:
        """JSON-ready form: a sequence of rows in field order (JSON arrays)."""
        return self._stored

    def get(self, key: str) -> R | None:
        """The row whose key is `key`, decoded, or None."""
        for row in self._stored:
            if row[0] == key:
                return row if type(row) is self._kind else tuple.__new__(self._kind, row)
        return None

    def without(self, key: str) -> Rows[R]:
        """These rows but the one keyed `key`."""
        return Rows(self._kind, tuple([row for row in self._stored if row[0] != key]))

    def put(self, row: R, limit: int | None = None) -> Rows[R]:
        """These rows with `row` replacing the one of the same key (or appended last).

        With `limit`, the oldest rows (first) are dropped to keep at most `limit`.
        """
        key = row[0]
        kept = [old for old in self._stored if old[0] != key]
        kept.append(row)
        if limit is not None and len(kept) > limit:
            kept = kept[-limit:]
        return Rows(self._kind, tuple(kept))

    def __iter__(self) -> Iterator[R]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self._stored)

    def __bool__(self) -> bool:
        return len(self._stored) > 0

    def __getitem__(self, index: int) -> R:
        return self.rows[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Rows):
            return self.rows == other.rows
        if isinstance(other, tuple):
            return self.rows == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.rows)

    def __repr__(self) -> str:
        return f"Rows({self.rows!r})"


@dataclass(frozen=True, slots=True)
class UserFeatures:
    """What oO knows about one person's current situation (only what decisions need).

    Instants are whole epoch seconds. Query methods take `at`, an instant in
    epoch seconds, and never read a clock.
    """

    user_id: str
    last_activity_at: int | None = None
    last_app_open_at: int | None = None
    signals_by_domain: dict[str, int] = field(default_factory=dict)
    recent_event_ids: tuple[str, ...] = ()
    todos: Rows[Todo] = field(default_factory=lambda: Rows(Todo))
    habits: Rows[Habit] = field(default_factory=lambda: Rows(Habit))
    calendar: Rows[CalendarEvent] = field(default_factory=lambda: Rows(CalendarEvent))
    tombstones: Rows[Tombstone] = field(default_factory=lambda: Rows(Tombstone))
    mood_score: int | None = None
    mood_at: int | None = None
    prefs: Preferences = Preferences()
    deletion_requested: bool = False
    tips_today: int = 0
    tips_day: str | None = None  # the local date `tips_today` counts for
    last_tip_at: int | None = None
    showing: ShowingTip | None = None
    recent_tips: Rows[GivenTip] = field(default_factory=lambda: Rows(GivenTip))
    reactions: Rows[Reaction] = field(default_factory=lambda: Rows(Reaction))
    fatigue: float = 0.0
    fatigue_at: int | None = None  # when `fatigue` was last set; it decays from there
    learned: Learned = field(default_factory=Learned)  # timing and content statistics

    # --- queries -----------------------------------------------------------

    def local_time(self, at: float) -> datetime:
        """Wall-clock time in the person's time zone at `at`."""
        return local(at, self.prefs.time_zone)

    def local_day(self, at: float) -> str:
        """The person's local ISO date at `at`."""
        return local_date(at, self.prefs.time_zone)

    def tips_on_day_of(self, at: float) -> int:
        """Tips given on the person's local day containing `at` (resets at local midnight)."""
        return self.tips_today if self.tips_day == self.local_day(at) else 0

    def fatigue_level(self, at: float) -> float:
        """Fatigue at `at`: the last value, halved every FATIGUE_HALF_LIFE_S since it was set."""
        if self.fatigue_at is None or self.fatigue <= 0.0:
            return 0.0
        elapsed = max(0.0, at - self.fatigue_at)
        return self.fatigue * 0.5 ** (elapsed / FATIGUE_HALF_LIFE_S)

    def showing_at(self, at: float) -> ShowingTip | None:
        """The unanswered tip still on screen at `at` (None once it expired)."""
        showing = self.showing
        return showing if showing is not None and showing.expires_at > at else None

    def current_event(self, at: float) -> CalendarEvent | None:
        """The busy calendar event covering `at` (the one ending last, if they overlap)."""
        covering = [e for e in self.calendar if e.busy and e.starts_at <= at < e.ends_at]
        return max(covering, key=lambda e: e.ends_at) if covering else None

    def next_event(self, at: float) -> CalendarEvent | None:
        """The next busy calendar event starting after `at`."""
        upcoming = [e for e in self.calendar if e.busy and e.starts_at > at]
        return min(upcoming, key=lambda e: e.starts_at) if upcoming else None

    def last_ended_event(self, at: float) -> CalendarEvent | None:
        """The busy calendar event that ended most recently, at or before `at`."""
        ended = [e for e in self.calendar if e.busy and e.ends_at <= at]
        return max(ended, key=lambda e: e.ends_at) if ended else None

    def free_window(self, at: float) -> tuple[int | None, int | None] | None:
        """The free interval around `at` as (since, until); None when busy at `at`.

        `since` is when the last busy event ended (None: nothing known),
        `until` when the next one starts (None: nothing planned).
        """
        if self.current_event(at) is not None:
            return None
        last, upcoming = self.last_ended_event(at), self.next_event(at)
        return (last.ends_at if last else None, upcoming.starts_at if upcoming else None)

    def open_todos_ranked(self) -> tuple[Todo, ...]:
        """Open todos, most pressing first: by due time (none last), then priority."""
        return tuple(sorted(self.todos, key=_urgency))

    def habit_settled_on_day_of(self, habit: Habit, at: float) -> bool:
        """Whether `habit` was done or skipped on the local day of `at`."""
        day = self.local_day(at)
        return habit.last_done_on == day or habit.skipped_on == day

    # --- table representation ---------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the table store: rows are arrays in field order.

        Values are str/int/float/bool/None, dicts, lists and tuples (which any
        JSON encoder writes as arrays). The rows are shared with this state,
        not copied (that is what keeps a round trip cheap): treat as read-only.
        """
        return {
            "v": FORMAT_VERSION,
            "user_id": self.user_id,
            "last_activity_at": self.last_activity_at,
            "last_app_open_at": self.last_app_open_at,
            "signals_by_domain": self.signals_by_domain,
            "recent_event_ids": self.recent_event_ids,
            "todos": self.todos.stored(),
            "habits": self.habits.stored(),
            "calendar": self.calendar.stored(),
            "tombstones": self.tombstones.stored(),
            "mood_score": self.mood_score,
            "mood_at": self.mood_at,
            "prefs": self.prefs,
            "deletion_requested": self.deletion_requested,
            "tips_today": self.tips_today,
            "tips_day": self.tips_day,
            "last_tip_at": self.last_tip_at,
            "showing": self.showing,
            "recent_tips": self.recent_tips.stored(),
            "reactions": self.reactions.stored(),
            "fatigue": self.fatigue,
            "fatigue_at": self.fatigue_at,
            "learned": self.learned.stored(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserFeatures:
        """Rebuild from `to_dict()` output or its JSON round trip; takes ownership of `data`.

        Values of earlier formats are read too, so a running deployment upgrades
        without a wipe: version 2 (before learned statistics: it starts with
        none) and the first format (before version 2).
        """
        version = data.get("v")
        if version not in (2, FORMAT_VERSION):
            return _from_first_format(data)
        prefs, showing = data["prefs"], data["showing"]
        if type(prefs) is not Preferences:
            prefs = Preferences(prefs[0], prefs[1], prefs[2], prefs[3], tuple(prefs[4]), prefs[5])
        if showing is not None and type(showing) is not ShowingTip:
            showing = ShowingTip(*showing)
        return cls(
            data["user_id"], data["last_activity_at"], data["last_app_open_at"],
            dict(data["signals_by_domain"]), tuple(data["recent_event_ids"]),
            Rows(Todo, data["todos"]), Rows(Habit, data["habits"]),
            Rows(CalendarEvent, data["calendar"]), Rows(Tombstone, data["tombstones"]),
            data["mood_score"], data["mood_at"], prefs, data["deletion_requested"],
            data["tips_today"], data["tips_day"], data["last_tip_at"], showing,
            Rows(GivenTip, data["recent_tips"]), Rows(Reaction, data["reactions"]),
            data["fatigue"], data["fatigue_at"], Learned(data.get("learned")),
        )


_FIELD_NAMES = tuple(f.name for f in fields(UserFeatures))


def _with(state: UserFeatures, changes: dict[str, Any]) -> UserFeatures:
    # dataclasses.replace re-checks every field on each call; this is the hot path.
    values = {name: getattr(state, name) for name in _FIELD_NAMES}
    values.update(changes)
    return UserFeatures(**values)


def _from_first_format(data: dict[str, Any]) -> UserFeatures:
    # The first format: {user_id, last_activity_at (ISO), signals_by_domain, recent_event_ids}.
    last = data.get("last_activity_at")
    return UserFeatures(
        user_id=data["user_id"],
        last_activity_at=seconds(datetime.fromisoformat(last)) if isinstance(last, str) else last,
        signals_by_domain=dict(data.get("signals_by_domain") or {}),
        recent_event_ids=tuple(data.get("recent_event_ids") or ()),
    )


def _urgency(todo: Todo) -> tuple[bool, int, int, int]:
    return (todo.due_at is None, todo.due_at or 0, -todo.priority, todo.changed_at)


def _bury(tombstones: Rows[Tombstone], key: str, at: int) -> Rows[Tombstone]:
    # A tombstone keeps the latest closing time, so a late close cannot lower it.
    old = tombstones.get(key)
    return tombstones.put(Tombstone(key, max(at, old.at) if old else at), MAX_TOMBSTONES)


def _buried_at(tombstones: Rows[Tombstone], key: str) -> int | None:
    stone = tombstones.get(key)
    return stone.at if stone is not None else None


# --- the fold, one function per signal domain --------------------------------


def _fold_task(s: UserFeatures, e: Any, at: int) -> dict[str, Any]:
    key = "task:" + e.task_id
    existing = s.todos.get(e.task_id)
    if existing is not None and existing.changed_at > at:
        return {}  # a newer change was applied already
    buried = _buried_at(s.tombstones, key)
    if e.change in ("completed", "deleted"):
        if existing is None and buried is not None and buried >= at:
            return {}
        return {"todos": s.todos.without(e.task_id), "tombstones": _bury(s.tombstones, key, at)}
    if buried is not None and buried > at:
        return {}  # late news about a task closed since
    title = e.title if e.title is not None else (existing.title if existing else None)
    due = None if e.due_at is None else seconds(e.due_at)
    todos = s.todos.put(Todo(e.task_id, title, due, e.priority, at))
    if len(todos) > MAX_OPEN_TODOS:  # keep the most pressing ones
        todos = Rows.of(Todo, sorted(todos, key=_urgency)[:MAX_OPEN_TODOS])
    changes: dict[str, Any] = {"todos": todos}
    if buried is not None:
        changes["tombstones"] = s.tombstones.without(key)
    return changes


def _streak_after_done(habit: Habit, day: str) -> tuple[int, str | None]:
    last = habit.last_done_on
    if last is None:
        return 1, day
    if last >= day:
        return habit.streak, last  # same day again, or a late event: history is not rewritten
    if last == day_before(day):
        return habit.streak + 1, day
    return 1, day


def _fold_habit(s: UserFeatures, e: Any, at: int) -> dict[str, Any]:
    key = "habit:" + e.habit_id
    existing = s.habits.get(e.habit_id)
    if e.change == "removed":
        if existing is not None and existing.changed_at > at:
            return {}
        return {"habits": s.habits.without(e.habit_id), "tombstones": _bury(s.tombstones, key, at)}
    buried = _buried_at(s.tombstones, key)
    if buried is not None and buried > at:
        return {}
    base = existing or Habit(e.habit_id, e.name, e.usual_minute, 0, None, None, at)
    name = e.name if e.name is not None else base.name
    usual = e.usual_minute if e.usual_minute is not None else base.usual_minute
    if e.change == "defined":
        if existing is not None and existing.changed_at > at:
            return {}
        habit = base._replace(name=name, usual_minute=usual, changed_at=at)
    elif e.change == "done":
        wall = local(at, s.prefs.time_zone)
        streak, last = _streak_after_done(base, wall.date().isoformat())
        # Without a declared usual time, the first time it is done teaches it.
        habit = base._replace(name=name, usual_minute=minute_of_day(wall) if usual is None else usual,
                              streak=streak, last_done_on=last, changed_at=max(base.changed_at, at))
    else:  # skipped
        day = local_date(at, s.prefs.time_zone)
        late = base.last_done_on is not None and base.last_done_on >= day
        habit = base._replace(name=name, usual_minute=usual, streak=base.streak if late else 0,
                              skipped_on=max(base.skipped_on or day, day),
                              changed_at=max(base.changed_at, at))
    changes: dict[str, Any] = {"habits": s.habits.put(habit, MAX_HABITS)}
    if buried is not None:
        changes["tombstones"] = s.tombstones.without(key)
    return changes


def _fold_calendar(s: UserFeatures, e: Any, at: int) -> dict[str, Any]:
    key = "calendar:" + e.calendar_event_id
    existing = s.calendar.get(e.calendar_event_id)
    if existing is not None and existing.changed_at > at:
        return {}
    buried = _buried_at(s.tombstones, key)
    changes: dict[str, Any] = {}
    if e.change == "cancelled":
        if existing is None and buried is not None and buried >= at:
            return {}
        calendar = s.calendar.without(e.calendar_event_id)
        changes["tombstones"] = _bury(s.tombstones, key, at)
    elif buried is not None and buried > at:
        return {}
    else:
        calendar = s.calendar.put(CalendarEvent(
            e.calendar_event_id, seconds(e.starts_at), seconds(e.ends_at), bool(e.busy), at))
        if buried is not None:
            changes["tombstones"] = s.tombstones.without(key)
    # Event time is the only clock a fold has: prune against the newest event seen.
    # Stored rows are read by position here, so a calendar change decodes nothing.
    horizon = max(s.last_activity_at or at, at) - CALENDAR_KEEP_ENDED_S
    kept = sorted((c for c in calendar.stored() if c[_ENDS] >= horizon), key=_by_start)
    changes["calendar"] = Rows(CalendarEvent, tuple(kept[:MAX_CALENDAR_EVENTS]))
    return changes


_ENDS = CalendarEvent._fields.index("ends_at")
_by_start = itemgetter(CalendarEvent._fields.index("starts_at"))


def _fold_mood(s: UserFeatures, e: Any, at: int) -> dict[str, Any]:
    if s.mood_at is not None and s.mood_at > at:
        return {}
    return {"mood_score": e.score, "mood_at": at}


def _fold_context(s: UserFeatures, e: Any, at: int) -> dict[str, Any]:
    if e.kind == "app_opened" and (s.last_app_open_at is None or at > s.last_app_open_at):
        return {"last_app_open_at": at}
    return {}


def _fold_lifecycle(s: UserFeatures, e: Any, at: int) -> dict[str, Any]:
    if e.change == "deletion_requested":
        return {"deletion_requested": True}  # sticky, whatever the order of events
    p = s.prefs
    if p.changed_at is not None and p.changed_at > at:
        return {}  # a newer preferences change was applied already
    tz = e.time_zone if e.time_zone is not None and is_known_zone(e.time_zone) else p.time_zone
    kinds = p.kinds if e.kinds is None else tuple(k for k in KINDS if k in e.kinds)
    return {"prefs": Preferences(
        tz,
        p.quiet_start_minute if e.quiet_start_minute is None else e.quiet_start_minute,
        p.quiet_end_minute if e.quiet_end_minute is None else e.quiet_end_minute,
        p.daily_budget if e.daily_budget is None else e.daily_budget,
        kinds, at)}


_FOLDS = {
    "tasks": _fold_task,
    "habits": _fold_habit,
    "calendar": _fold_calendar,
    "mood": _fold_mood,
    "context": _fold_context,
    "lifecycle": _fold_lifecycle,
}


def fold(state: UserFeatures | None, event: Any, domain: str) -> tuple[UserFeatures, bool]:
    """Fold one validated signal (a `topics.records` signal, by duck typing) into the features.

    Returns `(new_state, changed)`; `changed` is False for a duplicate. Late
    events never move facts backwards: each fact keeps the event time of its
    last change and an older event about it is ignored (it still counts as seen).
    """
    current = state or UserFeatures(user_id=event.user_id)
    if current.deletion_requested:
        # A forgotten person's late signals (from another topic, so in no
        # guaranteed order with the deletion) are dropped, never folded back in.
        return current, False
    if event.event_id in current.recent_event_ids:
        return current, False
    if domain == "lifecycle" and event.change == "deletion_requested":
        return forgotten(current.user_id), True
    at = seconds(event.occurred_at)
    folder = _FOLDS.get(domain)
    changes = folder(current, event, at) if folder is not None else {}
    counts = dict(current.signals_by_domain)
    counts[domain] = counts.get(domain, 0) + 1
    changes["signals_by_domain"] = counts
    last = current.last_activity_at
    if last is None or at > last:
        changes["last_activity_at"] = at
    changes["recent_event_ids"] = (*current.recent_event_ids, event.event_id)[-IDEMPOTENCY_WINDOW:]
    return _with(current, changes), True


def forgotten(user_id: str) -> UserFeatures:
    """The state of a person who asked to be deleted: nothing but that fact."""
    return UserFeatures(user_id=user_id, deletion_requested=True)


# --- the engine's decisions and the person's reactions -----------------------


def apply_decision(state: UserFeatures, decision_id: str, tip_id: str, kind: str,
                   at: datetime, expires_at: datetime, *, moment: str | None = None,
                   group: str | None = None, policy: str | None = None,
                   ) -> tuple[UserFeatures, bool]:
    """Record that tip `tip_id` was decided at `at`: it counts toward today's budget and shows.

    With `moment` and `group` (the tip's arm group, see `domain.learning`),
    the tip is also remembered for learning: its answer will be credited to
    the timing bucket of `moment` at `at` and to `group`, and the quiet
    decision points logged so far are cleared (the decision carried them).
    Returns `(new_state, changed)`; a decision already recorded changes nothing.
    """
    if state.recent_tips.get(decision_id) is not None:
        return state, False
    t, until = seconds(at), seconds(expires_at)
    day = state.local_day(t)
    changes: dict[str, Any] = {
        "recent_tips": state.recent_tips.put(GivenTip(decision_id, tip_id, kind, t),
                                             MAX_RECENT_TIPS),
    }
    if moment is not None and group is not None:
        wall = state.local_time(t)
        bucket = timing_bucket(moment, wall.weekday(), wall.hour)
        changes["learned"] = state.learned.with_sent(
            Sent(decision_id, group, bucket, policy or "", t))
    if state.tips_day == day:
        changes["tips_today"] = state.tips_today + 1
    elif state.tips_day is None or day > state.tips_day:
        changes["tips_today"], changes["tips_day"] = 1, day
    # else: a late decision of an earlier local day; today's count is not its business.
    if state.last_tip_at is None or t >= state.last_tip_at:
        changes["last_tip_at"] = t
        changes["showing"] = ShowingTip(decision_id, tip_id, kind, until)
    return _with(state, changes), True


def apply_feedback(state: UserFeatures, decision_id: str, reaction: str, at: datetime,
                   *, tip_id: str | None = None) -> tuple[UserFeatures, bool]:
    """Record the person's `reaction` to decision `decision_id` at `at`.

    Answers (done, ack, save, snooze, dismiss, ignored) close the tip showing;
    dismissals, ignored tips and snoozes raise fatigue, done/ack/save lower it.
    `done` on a todo closes it, on a habit marks it done that day. An answer
    to a tip remembered for learning updates the learned statistics (timing,
    content; `domain.learning`). Returns `(new_state, changed)`; the same
    reaction to the same decision twice is a duplicate. `tip_id` defaults to
    the tip recorded for the decision.
    """
    if reaction not in REACTIONS:
        raise ValueError(f"unknown reaction {reaction!r}")
    if any(r.decision_id == decision_id and r.reaction == reaction for r in state.reactions):
        return state, False
    t = seconds(at)
    if tip_id is None:
        given = state.recent_tips.get(decision_id)
        tip_id = given.tip_id if given is not None else ""
    # Reactions are not keyed by decision alone (one decision gets several), so append.
    reactions = Rows.of(Reaction, (*state.reactions, Reaction(decision_id, tip_id, reaction, t))[
        -MAX_REACTIONS:])
    changes: dict[str, Any] = {"reactions": reactions}
    delta = FATIGUE_DELTA.get(reaction)
    if delta is not None:
        since = max(t, state.fatigue_at or t)  # a late reaction adds at the latest known time
        changes["fatigue"] = round(max(0.0, state.fatigue_level(since) + delta), 4)
        changes["fatigue_at"] = since
    if reaction in ANSWERS and state.showing is not None and state.showing.decision_id == decision_id:
        changes["showing"] = None
    if reaction == "done":
        changes.update(_done_from_tip(state, tip_id, t))
    learned, credited = state.learned.with_answer(decision_id, reaction, t)
    if credited is not None:
        changes["learned"] = learned
    return _with(state, changes), True


def record_quiet(state: UserFeatures, decision_id: str, at: datetime,
                 point: dict[str, Any]) -> UserFeatures:
    """Log a decision point where the policy chose no tip (`point`: see `domain.decide`).

    The log travels in the next decision's context snapshot ("quiet_before"),
    so that off-policy evaluation sees the no-sends with their propensities.
    Idempotent on `decision_id`; bounded (`domain.learning.MAX_QUIET`).
    """
    return _with(state, {"learned": state.learned.with_quiet(decision_id, seconds(at), point)})


def _done_from_tip(state: UserFeatures, tip_id: str, at: int) -> dict[str, Any]:
    if tip_id.startswith(TODO_TIP_PREFIX):
        task_id = tip_id[len(TODO_TIP_PREFIX):]
        return {"todos": state.todos.without(task_id),
                "tombstones": _bury(state.tombstones, "task:" + task_id, at)}
    if tip_id.startswith(HABIT_TIP_PREFIX):
        habit = state.habits.get(tip_id[len(HABIT_TIP_PREFIX):])
        if habit is not None:
            streak, last = _streak_after_done(habit, state.local_day(at))
            return {"habits": state.habits.put(habit._replace(streak=streak, last_done_on=last))}
    return {}
