"""The data model: frozen dataclasses with units in their names, validated on construction.

Conventions (see DESIGN.md): times are seconds (float); boxes are ``[x1, y1, x2, y2]`` in
pixels of the ORIGINAL video frame; a box of zero area (``[0, 0, 0, 0]``) means "no box at this
time". Box tracks are parallel numpy arrays (one row per instance per timestamp, in file order),
so several instances of one object at the same second are several rows with the same time.

>>> s = Span(1.5, 4.0)
>>> s.duration_s
2.5
>>> t = Track("dog", times_s=[1.0, 2.0], xyxy=[[0, 0, 10, 10], [0, 0, 0, 0]])
>>> t.nonempty.tolist()
[True, False]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported when a Track is made: ``ravst CMD --help`` stays light
    import numpy as np

__all__ = [
    "Answer",
    "CoordSpace",
    "Event",
    "ObjectMention",
    "Prediction",
    "QAItem",
    "Span",
    "Task",
    "Track",
    "VideoRecord",
]


class Task(str, Enum):
    """The three R-AVST task families (the ``task`` part of a stable QA id)."""

    TEMPORAL = "temporal"
    SPATIAL = "spatial"
    SPATIOTEMPORAL = "spatiotemporal"

    @property
    def official_key(self) -> str:
        """The key used for this task in the official ``xml_test_QA.json``."""
        return _OFFICIAL_KEYS[self]

    @classmethod
    def from_official_key(cls, key: str) -> Task:
        for task, official in _OFFICIAL_KEYS.items():
            if official == key:
                return task
        raise ValueError(f"unknown official task key {key!r}; expected one of {list(_OFFICIAL_KEYS.values())}")


_OFFICIAL_KEYS = {
    Task.TEMPORAL: "AV Temporal Reasoning",
    Task.SPATIAL: "AV Spatial Reasoning",
    Task.SPATIOTEMPORAL: "AV ST Reasoning",
}


class CoordSpace(str, Enum):
    """Coordinate space a model answered in. Metrics only ever see ``ORIGINAL`` pixels."""

    ORIGINAL = "original"  # pixels of the original video frame
    INPUT = "input"  # pixels of the (resized) frame the model was fed
    NORM1 = "norm1"  # 0-1 relative coordinates
    NORM1000 = "norm1000"  # 0-1000 relative coordinates (Qwen2-VL style)


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Span:
    """A closed time interval in seconds, ``start_s <= end_s``."""

    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_s", _finite("start_s", self.start_s))
        object.__setattr__(self, "end_s", _finite("end_s", self.end_s))
        if self.end_s < self.start_s:
            raise ValueError(f"Span end_s ({self.end_s}) is before start_s ({self.start_s})")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def as_list(self) -> list[float]:
        return [self.start_s, self.end_s]


def _zeros(shape: int | tuple[int, int]) -> np.ndarray:
    import numpy as np

    return np.zeros(shape)


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Track:
    """Boxes of one named object over time: parallel arrays ``times_s`` (N,) and ``xyxy`` (N, 4).

    Rows keep their order (the official layout lists one line per instance per second). A row
    whose box has zero area is "no box at this time" and is kept so that files round-trip.
    """

    name: str
    times_s: np.ndarray = field(default_factory=lambda: _zeros(0))
    xyxy: np.ndarray = field(default_factory=lambda: _zeros((0, 4)))

    def __post_init__(self) -> None:
        import numpy as np

        if not isinstance(self.name, str):
            raise ValueError(f"Track.name must be a str, got {type(self.name).__name__}")
        times = np.array(self.times_s, dtype=np.float64).reshape(-1)
        boxes = np.array(self.xyxy, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"Track {self.name!r}: xyxy must have shape (N, 4), got {boxes.shape}")
        if boxes.shape[0] != times.shape[0]:
            raise ValueError(
                f"Track {self.name!r}: {times.shape[0]} timestamps but {boxes.shape[0]} boxes"
            )
        if not (np.isfinite(times).all() and np.isfinite(boxes).all()):
            raise ValueError(f"Track {self.name!r}: times and boxes must be finite")
        object.__setattr__(self, "times_s", _readonly(times))
        object.__setattr__(self, "xyxy", _readonly(boxes))

    def __len__(self) -> int:
        return int(self.times_s.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Track):
            return NotImplemented
        import numpy as np

        return (
            self.name == other.name
            and np.array_equal(self.times_s, other.times_s)
            and np.array_equal(self.xyxy, other.xyxy)
        )

    def __hash__(self) -> int:
        return hash((self.name, self.times_s.tobytes(), self.xyxy.tobytes()))

    @property
    def nonempty(self) -> np.ndarray:
        """Boolean mask (N,) of rows whose box has positive area."""
        w = self.xyxy[:, 2] - self.xyxy[:, 0]
        h = self.xyxy[:, 3] - self.xyxy[:, 1]
        return (w > 0) & (h > 0)

    def with_name(self, name: str) -> Track:
        return Track(name, self.times_s, self.xyxy)


@dataclass(frozen=True, slots=True)
class Answer:
    """A typed answer, the same for ground truth and for a parsed model output.

    ``objects`` are the names in ``<object>`` tags in order; ``spans`` the ``<when>`` intervals
    (the official layout has at most one); ``tracks`` the ``<where>`` blocks, each named after
    the object it belongs to (``""`` when the answer did not say).
    """

    objects: tuple[str, ...] = ()
    spans: tuple[Span, ...] = ()
    tracks: tuple[Track, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        object.__setattr__(self, "spans", tuple(self.spans))
        object.__setattr__(self, "tracks", tuple(self.tracks))
        for name in self.objects:
            if not isinstance(name, str):
                raise ValueError(f"Answer.objects must be strings, got {name!r}")

    @property
    def span(self) -> Span | None:
        """The single interval of an official answer (the first one), or None."""
        return self.spans[0] if self.spans else None


@dataclass(frozen=True, slots=True)
class QAItem:
    """One question-answer pair of an R-AVST-style file, with its typed ground truth.

    ``qa_id`` is ``{video}/{event_index}/{task}/{k}`` (DESIGN.md). ``sounding`` is False only for
    spatial "silent object" questions. ``query_span`` is the interval named in a spatial question,
    ``query_object`` the object named in a temporal / spatio-temporal question.
    """

    qa_id: str
    video: str
    duration_s: float
    event_index: int
    event_num: int
    task: Task
    k: int
    question: str
    answer: Answer
    sounding: bool = True
    query_span: Span | None = None
    query_object: str | None = None
    category: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task(self.task))
        object.__setattr__(self, "duration_s", _finite("duration_s", self.duration_s))
        if self.duration_s < 0:
            raise ValueError(f"QA {self.qa_id}: duration_s must be >= 0, got {self.duration_s}")
        if not self.video:
            raise ValueError(f"QA {self.qa_id!r}: empty video name")
        if self.event_index < 0 or self.k < 0:
            raise ValueError(f"QA {self.qa_id}: event_index and k must be >= 0")

    @property
    def kind(self) -> str:
        """``temporal``, ``spatial-sounding``, ``spatial-silent`` or ``spatiotemporal``."""
        if self.task is Task.SPATIAL:
            return "spatial-sounding" if self.sounding else "spatial-silent"
        return self.task.value

    @staticmethod
    def make_id(video: str, event_index: int, task: Task | str, k: int) -> str:
        return f"{video}/{event_index}/{Task(task).value}/{k}"


@dataclass(frozen=True, slots=True)
class Event:
    """An annotated audio-visual event of an untrimmed video (UnAV-100 style)."""

    label: str
    span: Span
    label_id: int | None = None
    caption: str | None = None


@dataclass(frozen=True, slots=True)
class VideoRecord:
    """A video with its event annotations (one entry of an UnAV-100-style file)."""

    video_id: str
    duration_s: float
    events: tuple[Event, ...] = ()
    subset: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "duration_s", _finite("duration_s", self.duration_s))
        object.__setattr__(self, "events", tuple(self.events))
        if self.duration_s < 0:
            raise ValueError(f"video {self.video_id}: duration_s must be >= 0")


@dataclass(frozen=True, slots=True)
class ObjectMention:
    """An object found in an event caption by the caption analyzer (paper Box 1)."""

    name: str
    audible: bool  # True: "visible & audible"; False: "visible-only"

    @property
    def label(self) -> str:
        return "visible & audible" if self.audible else "visible-only"


@dataclass(frozen=True, slots=True)
class Prediction:
    """One line of a predictions JSONL file (DESIGN.md): the raw model output for a QA.

    ``coord_space`` says which pixel space the boxes in ``text`` are in; ``input_wh`` is the
    (width, height) of the frames fed to the model (needed for ``CoordSpace.INPUT``);
    ``frame_times_s`` the real timestamps of those frames.
    """

    qa_id: str
    text: str
    model: str | None = None
    coord_space: CoordSpace = CoordSpace.ORIGINAL
    input_wh: tuple[int, int] | None = None
    frame_times_s: tuple[float, ...] | None = None
    latency_s: float | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "coord_space", CoordSpace(self.coord_space))
        if not isinstance(self.text, str):
            raise ValueError(f"prediction {self.qa_id}: text must be a string")
        if self.input_wh is not None:
            wh = tuple(int(v) for v in self.input_wh)
            if len(wh) != 2 or min(wh) <= 0:
                raise ValueError(f"prediction {self.qa_id}: input_wh must be two positive ints")
            object.__setattr__(self, "input_wh", wh)
        if self.coord_space is CoordSpace.INPUT and self.input_wh is None:
            raise ValueError(f"prediction {self.qa_id}: coord_space 'input' needs input_wh")
        if self.frame_times_s is not None:
            object.__setattr__(self, "frame_times_s", tuple(float(t) for t in self.frame_times_s))
