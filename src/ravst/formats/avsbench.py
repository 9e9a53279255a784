"""AVSBench-V1 test lists (+ optional ground-truth masks) -> spatial QAs (paper Table 6, m_vIoU).

The CSVs (``avs1_s4_test.csv`` single-source, ``avs1_ms3_test.csv`` multi-source) have no header
and one row per annotated frame: ``{video}_{frame},{category}`` with ``frame`` in 1..5 (one frame
per second of a 5 s clip; the video name may itself contain ``_``, the frame is after the last
one). Single-source categories are event names (``playing_piano``); multi-source rows list
object names, quoted when there are several (``"guitar, violin"``).

The CSVs carry no masks. AVSBench distributes binary PNG masks, one per frame, named
``{video}_{frame}.png`` (under ``gt_masks/...`` in various sub-folders); give their root as
``masks_dir`` and every PNG below it is found by name. Boxes are derived from the masks: one box
per frame around all foreground pixels (``instances=False``), or one per 8-connected component
(``instances=True``). Boxes are in mask pixels, ``x2``/``y2`` exclusive (a single pixel at
column 3 gives ``x1=3, x2=4``). Without masks the items have empty tracks (no scorable frame,
so the metrics exclude them) and a warning says so.

Each video gives one spatial QA: ``What visible object(s) make sound between 0.0 and 5.0, and
where is/are they?``, objects = the category with ``_`` replaced by spaces (multi-source: the
listed names), one track per object. With a single mask per frame the boxes cannot be told
apart between objects, so every object of a multi-source video gets the same boxes.

>>> rows = parse_avsbench_rows([["0d9u2CymIxc_1", "helicopter"], ["a_b_2", "guitar, violin"]])
>>> [(r.video, r.frame, r.objects) for r in rows]
[('0d9u2CymIxc', 1, ('helicopter',)), ('a_b', 2, ('guitar', 'violin'))]
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ravst.formats import FormatError, read_text, where
from ravst.types import Answer, QAItem, Span, Task, Track

__all__ = [
    "AVSBENCH_DURATION_S",
    "AvsFrame",
    "avsbench_to_qa_items",
    "mask_boxes",
    "parse_avsbench_rows",
    "read_avsbench",
]

log = logging.getLogger(__name__)

AVSBENCH_DURATION_S = 5.0
SPATIAL_QUESTION = "What visible object(s) make sound between {start} and {end}, and where is/are they?"


@dataclass(frozen=True, slots=True)
class AvsFrame:
    """One CSV row: ``frame`` is 1-based; ``category`` as written; ``objects`` its names."""

    video: str
    frame: int
    category: str
    objects: tuple[str, ...]
    line: int

    @property
    def key(self) -> str:
        return f"{self.video}_{self.frame}"


def _objects(category: str) -> tuple[str, ...]:
    return tuple(p.strip().replace("_", " ") for p in category.split(",") if p.strip())


def parse_avsbench_rows(rows: Iterable[Sequence[str]], *, source: str | Path | None = None) -> list[AvsFrame]:
    """Parse CSV rows ``[videoid_frame, category]``."""
    out = []
    for number, row in enumerate(rows, start=1):
        ctx = where(source, f"line {number}")
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise FormatError(f"{ctx}: expected 2 columns videoid_frame,category, got {len(row)}: {row!r}")
        key, category = row[0].strip(), row[1].strip()
        video, sep, frame_text = key.rpartition("_")
        if not sep or not video or not frame_text.isdigit():
            raise FormatError(f"{ctx}: videoid_frame: expected '<video>_<frame number>', got {key!r}")
        if not category:
            raise FormatError(f"{ctx}: category: empty")
        out.append(AvsFrame(video, int(frame_text), category, _objects(category), number))
    return out


def read_avsbench(path: str | Path) -> list[AvsFrame]:
    """Read an AVSBench-V1 CSV (``avs1_s4_test.csv`` / ``avs1_ms3_test.csv``)."""
    path = Path(path)
    with io.StringIO(read_text(path), newline="") as fh:
        return parse_avsbench_rows(csv.reader(fh), source=path)


def mask_boxes(mask: np.ndarray, *, instances: bool = False) -> np.ndarray:
    """Boxes ``(N, 4)`` ``[x1, y1, x2, y2]`` (x2, y2 exclusive) of the nonzero pixels of a 2-D
    mask: one box around all of them, or one per 8-connected component; ``(0, 4)`` if empty.

    >>> m = np.zeros((4, 6), dtype=np.uint8); m[1:3, 1:3] = 1; m[0, 5] = 255
    >>> mask_boxes(m).tolist()
    [[1.0, 0.0, 6.0, 3.0]]
    >>> mask_boxes(m, instances=True).tolist()
    [[5.0, 0.0, 6.0, 1.0], [1.0, 1.0, 3.0, 3.0]]
    """
    fg = np.asarray(mask)
    if fg.ndim == 3:
        fg = fg.max(axis=2)
    fg = fg > 0
    if not fg.any():
        return np.zeros((0, 4))
    if not instances:
        ys, xs = np.nonzero(fg)
        return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float64)
    from scipy import ndimage

    labels, _ = ndimage.label(fg, structure=np.ones((3, 3), dtype=bool))
    boxes = [
        [sl[1].start, sl[0].start, sl[1].stop, sl[0].stop]
        for sl in ndimage.find_objects(labels)
        if sl is not None
    ]
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def _load_mask(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"))
    except OSError as err:
        raise FormatError(f"{path}: cannot read mask image: {err}") from err


def avsbench_to_qa_items(
    frames: Iterable[AvsFrame],
    *,
    masks_dir: str | Path | None = None,
    instances: bool = False,
    frame_period_s: float = 1.0,
    first_frame_time_s: float = 0.0,
) -> list[QAItem]:
    """One spatial QA per video. Frame ``k`` (1-based) is at
    ``first_frame_time_s + (k - 1) * frame_period_s`` seconds. With ``masks_dir``, a frame of the
    CSV without a mask file is an error (naming the frame and the folder)."""
    videos: dict[str, list[AvsFrame]] = {}
    for f in frames:
        videos.setdefault(f.video, []).append(f)
    masks: dict[str, Path] = {}
    if masks_dir is not None:
        root = Path(masks_dir)
        if not root.is_dir():
            raise FormatError(f"{root}: masks_dir is not a directory")
        masks = {p.stem: p for p in sorted(root.rglob("*.png"))}
    else:
        log.warning("AVSBench: no masks_dir given: %d items get empty ground-truth tracks "
                    "(no scorable frame; spatial metrics will exclude them)", len(videos))
    end_s = max(AVSBENCH_DURATION_S, first_frame_time_s + 5 * frame_period_s)
    items = []
    for video, group in videos.items():
        category = group[0].category
        odd = next((f for f in group if f.category != category), None)
        if odd is not None:
            raise FormatError(f"line {odd.line}: category {odd.category!r} of {odd.key} differs from "
                              f"{category!r} on line {group[0].line} (same video)")
        frame_numbers = [f.frame for f in group]
        if len(set(frame_numbers)) != len(frame_numbers):
            raise FormatError(f"line {group[-1].line}: video {video!r} lists a frame twice")
        objects = group[0].objects
        times: list[float] = []
        boxes: list[np.ndarray] = []
        if masks_dir is not None:
            for f in sorted(group, key=lambda f: f.frame):
                path = masks.get(f.key)
                if path is None:
                    raise FormatError(f"line {f.line}: no mask {f.key}.png under {masks_dir}")
                frame_boxes = mask_boxes(_load_mask(path), instances=instances)
                if not len(frame_boxes):
                    frame_boxes = np.zeros((1, 4))  # "no box at this time", as in the official layout
                times.extend([first_frame_time_s + (f.frame - 1) * frame_period_s] * len(frame_boxes))
                boxes.append(frame_boxes)
        xyxy = np.concatenate(boxes) if boxes else np.zeros((0, 4))
        tracks = tuple(Track(name, np.asarray(times), xyxy) for name in objects)
        items.append(
            QAItem(
                qa_id=QAItem.make_id(video, 0, Task.SPATIAL, 0),
                video=video,
                duration_s=AVSBENCH_DURATION_S,
                event_index=0,
                event_num=1,
                task=Task.SPATIAL,
                k=0,
                question=SPATIAL_QUESTION.format(start=0.0, end=end_s),
                answer=Answer(objects=objects, tracks=tracks),
                sounding=True,
                query_span=Span(0.0, end_s),
                category=category,
            )
        )
    return items
