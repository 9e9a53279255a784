"""Stage "annotate" (paper appendix "Bounding Box Annotation", Grounded-SAM2 style): boxes of
each analyzed object at 1 s steps from each event's start.

Frame times of an event are ``round(start, 1) + k * step_s`` up to its end, like the official
ground truth (an event starting at 1.39 s gets 1.4, 2.4, 3.4, ...). All the frames a video needs
are decoded in ONE streaming pass (:func:`ravst.media.iter_frames_at`), so memory does not grow
with video length. Each frame goes to a detector with the names of the objects of the events
that cover it. Boxes are in original-video pixels; a time where an object is not found gets
``[0, 0, 0, 0]``; several instances give several rows at the same time (official layout).

Detectors (``AnnotateConfig.backend``):

- ``opencv``: HOG people detector + Haar cascades (upper body, cat face) shipped inside
  OpenCV 4.x: plain CPU, no download; it only knows people and cats, so other objects get
  empty boxes. A baseline, not a substitute for an open-vocabulary detector.
- ``grounding-dino``: transformers zero-shot object detection (GroundingDINO), text prompt
  ``"name1. name2."``, ``box_threshold`` 0.4 and ``text_threshold`` 0.3 (the paper's values).
- ``owlv2``: transformers OWLv2, one text query per object, ``box_threshold``.

With ``sam2_model`` set, :class:`Sam2Propagator` fills the frames where the detector found
nothing by SAM2 video tracking from the first detected frame (Grounded-SAM2 style).

>>> event_frame_times(1.39314, 4.31906)
[1.4, 2.4, 3.4]
>>> event_frame_times(0.0, 2.0)
[0.0, 1.0, 2.0]
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ravst.media.video import MediaError, iter_frames_at, probe
from ravst.pipeline.config import AnnotateConfig, StartupError

__all__ = [
    "Detection",
    "GroundingDinoDetector",
    "OpenCVDetector",
    "Owlv2Detector",
    "Sam2Propagator",
    "annotate_record",
    "event_frame_times",
    "find_video",
    "load_annotators",
    "local_model_path",
    "make_detector",
    "mask_to_box",
]

log = logging.getLogger(__name__)

Detector = Callable[[np.ndarray, Sequence[str]], list["Detection"]]


@dataclass(frozen=True)
class Detection:
    """One box for object ``names[index]`` in the pixels of the image given to the detector."""

    index: int
    score: float
    xyxy: tuple[float, float, float, float]


def event_frame_times(start_s: float, end_s: float, step_s: float = 1.0, decimals: int = 1) -> list[float]:
    """Frame times of an event: from ``round(start_s, decimals)`` every ``step_s`` up to ``end_s``."""
    first = round(float(start_s), decimals)
    count = max(0, math.floor((float(end_s) - first) / step_s + 1e-9) + 1)
    return [round(first + k * step_s, decimals) for k in range(count)]


def find_video(videos_dir: str | Path, video_id: str, exts: Sequence[str]) -> Path:
    base = Path(videos_dir)
    for ext in exts:
        for candidate in (base / f"{video_id}{ext}", base / f"v_{video_id}{ext}"):
            if candidate.is_file():
                return candidate
    raise MediaError(base / video_id, f"no video file for {video_id!r} (tried {', '.join(exts)})")


# ---------------------------------------------------------------- opencv backend
_PERSON_WORDS = {"person", "people", "man", "men", "woman", "women", "boy", "boys", "girl", "girls", "child",
                 "children", "kid", "kids", "baby", "babies", "player", "players", "singer", "singers", "choir",
                 "crowd", "audience", "performer", "musician", "musicians", "drummer", "guitarist", "lady",
                 "guy", "female", "male", "human", "toddler", "teenager", "speaker", "dancer", "pianist"}
_CAT_WORDS = {"cat", "cats", "kitten", "kittens"}


def _words(name: str) -> set[str]:
    return set(re.findall(r"[a-z]+", name.lower()))


def _nms(boxes: list[tuple[float, float, float, float]], scores: list[float], iou: float = 0.5) -> list[int]:
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        ok = True
        for j in keep:
            a, b = boxes[i], boxes[j]
            inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if union > 0 and inter / union > iou:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


class OpenCVDetector:
    """People (HOG + upper-body cascade) and cats (cat-face cascade); CPU only, no download.

    HOG scores are SVM margins mapped through a sigmoid and kept above ``box_threshold``;
    cascade hits score 1.0.
    """

    def __init__(self, cfg: AnnotateConfig) -> None:
        import cv2

        self.cfg = cfg
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())  # type: ignore[attr-defined]
        root = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]
        self.upper = cv2.CascadeClassifier(str(root / "haarcascade_upperbody.xml"))
        self.cat = cv2.CascadeClassifier(str(root / "haarcascade_frontalcatface_extended.xml"))
        if self.upper.empty() or self.cat.empty():
            raise RuntimeError(f"OpenCV Haar cascades missing under {root}")

    def __call__(self, image: np.ndarray, names: Sequence[str]) -> list[Detection]:
        import cv2

        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        out: list[Detection] = []
        people: list[tuple[tuple[float, float, float, float], float]] | None = None
        cats: list[tuple[tuple[float, float, float, float], float]] | None = None
        for index, name in enumerate(names):
            words = _words(name)
            if words & _PERSON_WORDS:
                if people is None:
                    people = self._people(image, gray)
                found = people
            elif words & _CAT_WORDS:
                if cats is None:
                    cats = [((float(x), float(y), float(x + w), float(y + h)), 1.0)
                            for x, y, w, h in self.cat.detectMultiScale(gray, 1.1, 4)]
                found = cats
            else:
                continue
            out.extend(Detection(index, score, box) for box, score in found)
        return out

    def _people(self, image: np.ndarray, gray: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        import cv2

        # OpenCV's HOG crashes the process (SIGSEGV) on an image smaller than its 64x128 window
        # plus padding (e.g. a 16:9 frame shrunk to max_side 160 is 90 px tall): upscale for it
        win_w, win_h = self.hog.winSize
        pad = 8
        h, w = gray.shape[:2]
        up = max(1.0, win_h / max(h + 2 * pad, 1), win_w / max(w + 2 * pad, 1))
        hog_in = gray if up == 1.0 else cv2.resize(gray, (math.ceil(w * up), math.ceil(h * up)),
                                                   interpolation=cv2.INTER_LINEAR)
        rects, weights = self.hog.detectMultiScale(hog_in, winStride=(8, 8), padding=(pad, pad), scale=1.05)
        boxes = [(float(x) / up, float(y) / up, float(x + bw) / up, float(y + bh) / up) for x, y, bw, bh in rects]
        scores = [1.0 / (1.0 + math.exp(-float(w))) for w in np.asarray(weights).reshape(-1)]
        for x, y, w, h in self.upper.detectMultiScale(gray, 1.1, 4):
            boxes.append((float(x), float(y), float(x + w), float(y + h)))
            scores.append(1.0)
        keep = [i for i in _nms(boxes, scores) if scores[i] >= self.cfg.box_threshold]
        return [(boxes[i], scores[i]) for i in keep]


# ---------------------------------------------------------------- transformers backends
def _labels_to_index(text: str, names: Sequence[str]) -> int | None:
    """Which object a GroundingDINO phrase belongs to (exact, then word overlap)."""
    phrase = text.strip().lower()
    lowered = [n.lower() for n in names]
    if phrase in lowered:
        return lowered.index(phrase)
    best, best_overlap = None, 0
    for i, name in enumerate(lowered):
        overlap = len(_words(name) & _words(phrase))
        if overlap > best_overlap:
            best, best_overlap = i, overlap
    return best


class GroundingDinoDetector:
    """GroundingDINO zero-shot detection from a local path or hub id (transformers)."""

    def __init__(self, cfg: AnnotateConfig) -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        path = local_model_path(cfg.detector_model, "the grounding-dino detector", "--model PATH")
        self.cfg = cfg
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = AutoModelForZeroShotObjectDetection.from_pretrained(path).to(cfg.device).eval()

    def __call__(self, image: np.ndarray, names: Sequence[str]) -> list[Detection]:
        import torch

        prompt = " ".join(f"{n.lower().strip()}." for n in names)
        inputs = self.processor(images=image, text=prompt, return_tensors="pt").to(self.cfg.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        result = self.processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=self.cfg.box_threshold,
            text_threshold=self.cfg.text_threshold, target_sizes=[image.shape[:2]])[0]
        out = []
        for box, score, text in zip(result["boxes"].tolist(), result["scores"].tolist(), result["text_labels"],
                                    strict=True):
            index = _labels_to_index(text, names)
            if index is not None:
                out.append(Detection(index, float(score), tuple(float(v) for v in box)))  # type: ignore[arg-type]
        return out


class Owlv2Detector:
    """OWLv2 open-vocabulary detection from a local path or hub id (transformers)."""

    def __init__(self, cfg: AnnotateConfig) -> None:
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        if not cfg.detector_model:
            raise StartupError("annotate.model: the owlv2 backend needs a model (a local folder or a hub id in "
                               "the local Hugging Face cache)")
        path = local_model_path(cfg.detector_model, "the owlv2 detector", "--model PATH")
        self.cfg = cfg
        self.processor = Owlv2Processor.from_pretrained(path)
        self.model: Any = Owlv2ForObjectDetection.from_pretrained(path)
        self.model = self.model.to(cfg.device).eval()  # type: ignore[arg-type]

    def __call__(self, image: np.ndarray, names: Sequence[str]) -> list[Detection]:
        import torch

        queries = [[f"a photo of {n}" for n in names]]
        inputs = self.processor(text=queries, images=image, return_tensors="pt", padding="max_length",
                                truncation=True).to(self.cfg.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        # OWLv2 pads the image to a square: boxes come back relative to the padded square
        side = max(image.shape[:2])
        result = self.processor.post_process_grounded_object_detection(
            outputs, threshold=self.cfg.box_threshold, target_sizes=[(side, side)])[0]
        return [Detection(int(label), float(score), tuple(float(v) for v in box))  # type: ignore[arg-type]
                for box, score, label in zip(result["boxes"].tolist(), result["scores"].tolist(),
                                             result["labels"].tolist(), strict=True)]


def mask_to_box(mask: np.ndarray) -> list[float] | None:
    """Tight ``[x1, y1, x2, y2]`` (pixel edges) of a boolean mask, or None when it is empty.

    >>> m = np.zeros((4, 6), bool); m[1:3, 2:5] = True
    >>> mask_to_box(m)
    [2.0, 1.0, 5.0, 3.0]
    """
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


class Sam2Propagator:
    """Grounded-SAM2 style gap filling: the boxes of the first frame where the detector found an
    object seed SAM2 video tracking (transformers ``Sam2VideoModel``) over the event's frames,
    forward and backward; frames where the detector found nothing get the boxes of the
    propagated masks. Detector boxes are never replaced."""

    def __init__(self, cfg: AnnotateConfig) -> None:
        from transformers import Sam2VideoModel, Sam2VideoProcessor

        path = local_model_path(cfg.sam2, "SAM2 (propagation of the detector's boxes)", "--sam2 PATH")
        self.cfg = cfg
        self.processor: Any = Sam2VideoProcessor.from_pretrained(path)
        self.model: Any = Sam2VideoModel.from_pretrained(path)
        self.model = self.model.to(cfg.device).eval()  # type: ignore[arg-type]

    def fill(self, frames: Sequence[np.ndarray], boxes: list[list[list[float]]]) -> list[list[list[float]]]:
        """``boxes[i]``: the boxes (frame pixels) found in ``frames[i]``, possibly none."""
        import torch

        seed = next((i for i, b in enumerate(boxes) if b), None)
        if seed is None or all(boxes):
            return boxes
        height, width = frames[0].shape[:2]
        session = self.processor.init_video_session(video=list(frames), inference_device=self.cfg.device)
        ids = list(range(1, len(boxes[seed]) + 1))
        self.processor.add_inputs_to_inference_session(session, frame_idx=seed, obj_ids=ids,
                                                       input_boxes=[boxes[seed]])
        out = [list(b) for b in boxes]
        with torch.no_grad():
            self.model(inference_session=session, frame_idx=seed)
            for reverse in (False, True):
                for step in self.model.propagate_in_video_iterator(session, start_frame_idx=seed, reverse=reverse):
                    i = int(step.frame_idx)
                    if boxes[i] or out[i]:
                        continue
                    masks = self.processor.post_process_masks([step.pred_masks], original_sizes=[[height, width]],
                                                              binarize=True)[0]
                    found = [mask_to_box(np.asarray(m[0].cpu())) for m in masks]
                    out[i] = [b for b in found if b is not None]
        return out


def local_model_path(name: str, what: str, option: str) -> str:
    """A model folder on this machine for ``name`` (a local folder, or a hub id already in the
    local Hugging Face cache); never downloads. Raises :class:`StartupError` saying what is
    missing and the ways on."""
    if not name:
        raise StartupError(f"{what}: no model given; pass {option}")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise StartupError(f"{what}: {path} has no config.json (not a transformers checkpoint folder)")
        return str(path)
    if path.exists() or name.startswith(("/", "./", "../", "~")) or name.count("/") != 1:
        raise StartupError(f"{what}: no model folder {name!r} on this machine")
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return str(Path(cached).parent)
    raise StartupError(
        f"{what}: the weights of {name!r} are not available locally (not a folder, not in the Hugging Face "
        f"cache; nothing is downloaded during a build; `huggingface-cli download {name}` fetches it)")


_DETECTOR_WAYS_ON = ("Ways on: --model PATH (a local GroundingDINO / OWLv2 checkpoint folder), or --detector opencv "
                     "for a people-only baseline (its boxes are then marked as a baseline)")


def make_detector(cfg: AnnotateConfig) -> Detector:
    if cfg.backend == "opencv":
        return OpenCVDetector(cfg)
    if cfg.backend == "grounding-dino":
        return GroundingDinoDetector(cfg)
    return Owlv2Detector(cfg)


def load_annotators(cfg: AnnotateConfig) -> tuple[Detector, Sam2Propagator | None]:
    """Load the detector (and SAM2 when on) ONCE, at stage start. Any failure is a
    :class:`StartupError` naming what is missing and the ways on (``--model PATH``, ``--sam2``,
    ``--detector opencv``): the stage stops before its first video."""
    try:
        detector = make_detector(cfg)
    except StartupError as exc:
        raise StartupError(f"annotate: cannot start: {exc}. {_DETECTOR_WAYS_ON}"
                           ) from exc
    except (OSError, ValueError, RuntimeError, ImportError, KeyError) as exc:
        raise StartupError(f"annotate: cannot load the {cfg.backend} detector {cfg.detector_model!r}: "
                           f"{type(exc).__name__}: {exc}. {_DETECTOR_WAYS_ON}"
                           ) from exc
    if not cfg.sam2:
        return detector, None
    try:
        return detector, Sam2Propagator(cfg)
    except StartupError as exc:
        raise StartupError(f"annotate: cannot start: {exc}. Ways on: --sam2 PATH (a local Sam2VideoModel "
                           "folder), or --sam2 none (the detector alone, no propagation)") from exc
    except (OSError, ValueError, RuntimeError, ImportError, KeyError) as exc:
        raise StartupError(f"annotate: cannot load SAM2 {cfg.sam2!r}: {type(exc).__name__}: {exc}. Pass "
                           "--sam2 PATH (a local Sam2VideoModel folder) or --sam2 none") from exc


# ---------------------------------------------------------------- per video
def _to_original(box: Sequence[float], scale: float, width: int, height: int) -> list[float]:
    x1, y1, x2, y2 = (v / scale for v in box)
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    return [float(round(x1)), float(round(y1)), float(round(x2)), float(round(y2))]


def annotate_record(record: dict[str, Any], detector: Detector, video_path: str | Path,
                    cfg: AnnotateConfig, propagator: Sam2Propagator | None = None) -> dict[str, Any]:
    """An analyzed record with ``width``/``height`` and, per event, ``tracks`` (one per object:
    ``name``, ``times_s``, ``xyxy`` rows, and per row its detector ``scores`` (None for a
    propagated or empty row) and ``sources``: ``detected`` / ``propagated`` (SAM2) / ``none``)
    and ``frame_times_s`` (real times of the decoded
    frames). With a ``propagator`` (SAM2), frames of an event where an object was not detected
    are filled by tracking; the frames of the video's events are then kept in memory (at
    ``max_side``) for that. Raises :class:`MediaError` for an unreadable video."""
    info = probe(video_path)
    if cfg.require_audio and not info.has_audio:
        raise MediaError(video_path, "no audio stream (an audio-visual dataset needs one)")
    needs: dict[float, list[str]] = {}
    plan = []
    for event in record["events"]:
        names = list(dict.fromkeys(o["name"] for o in event.get("objects", [])))
        end = min(float(event["end_s"]), info.duration_s)
        times = event_frame_times(event["start_s"], end, cfg.step_s, cfg.time_decimals) if names else []
        plan.append((names, times))
        for t in times:
            needs.setdefault(t, [])
            needs[t].extend(n for n in names if n not in needs[t])
    found: dict[tuple[float, str], list[list[float]]] = {}  # frame pixels
    scores: dict[tuple[float, str], list[float]] = {}
    real: dict[float, float] = {}
    images: dict[float, np.ndarray] = {}
    scale = 1.0
    ordered = sorted(needs)
    frames = iter_frames_at(video_path, ordered, max_side=cfg.max_side or None)
    for t, (real_t, image) in zip(ordered, frames, strict=True):
        real[t] = real_t
        scale = image.shape[1] / info.width
        if propagator is not None:
            images[t] = image
        names = needs[t]
        detections = sorted(detector(image, names), key=lambda d: -d.score)
        for index, name in enumerate(names):
            mine = [d for d in detections if d.index == index and d.xyxy[2] > d.xyxy[0] and d.xyxy[3] > d.xyxy[1]]
            mine = mine[: cfg.max_boxes]
            found[(t, name)] = [list(d.xyxy) for d in mine]
            scores[(t, name)] = [float(d.score) for d in mine]
    propagated: set[tuple[float, str]] = set()
    if propagator is not None:
        for names, times in plan:
            for name in names:
                filled = propagator.fill([images[t] for t in times], [found[(t, name)] for t in times])
                for t, boxes in zip(times, filled, strict=True):
                    if boxes and not found[(t, name)]:
                        propagated.add((t, name))
                        found[(t, name)] = boxes
    out = dict(record)
    out["width"], out["height"] = info.width, info.height
    events = []
    for event, (names, times) in zip(record["events"], plan, strict=True):
        ev = dict(event)
        tracks = []
        for name in names:
            rows_t: list[float] = []
            rows_b: list[list[float]] = []
            rows_s: list[float | None] = []
            rows_src: list[str] = []
            for t in times:
                source = "propagated" if (t, name) in propagated else "detected"
                row_scores = scores.get((t, name), []) if source == "detected" else []
                kept = 0
                for k, box in enumerate(found.get((t, name), [])):
                    b = _to_original(box, scale, info.width, info.height)
                    if b[2] > b[0] and b[3] > b[1]:
                        rows_t.append(t)
                        rows_b.append(b)
                        rows_s.append(round(row_scores[k], 4) if k < len(row_scores) else None)
                        rows_src.append(source)
                        kept += 1
                if not kept:
                    rows_t.append(t)
                    rows_b.append([0.0, 0.0, 0.0, 0.0])
                    rows_s.append(None)
                    rows_src.append("none")
            tracks.append({"name": name, "times_s": rows_t, "xyxy": rows_b, "scores": rows_s, "sources": rows_src})
        ev["tracks"] = tracks
        ev["frame_times_s"] = [real[t] for t in times]
        events.append(ev)
    out["events"] = events
    return out
