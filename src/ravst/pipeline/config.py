"""Configuration of the dataset-construction pipeline: one dataclass per stage.

Every threshold is defined here once, with the paper's value as default (R-AVST, "Dataset
Construction" and appendix "Bounding Box Annotation"). A YAML or JSON file with one section per
stage (``filter:``, ``analyze:``, ...) plus top-level paths builds a :class:`PipelineConfig`.

>>> FilterConfig().min_et_ratio
0.08
>>> AnnotateConfig().box_threshold, AnnotateConfig().text_threshold
(0.4, 0.3)
>>> PipelineConfig.from_dict({"out_dir": "x", "filter": {"max_events": 2}}).filter.max_events
2
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ANALYZER_BACKENDS",
    "DEFAULT_DETECTOR_MODELS",
    "DEFAULT_SAM2_MODEL",
    "DETECTOR_BACKENDS",
    "AnalyzeConfig",
    "AnnotateConfig",
    "FilterConfig",
    "PipelineConfig",
    "QAConfig",
    "SplitConfig",
    "StartupError",
    "StatsConfig",
    "config_fingerprint",
    "load_config",
]


ANALYZER_BACKENDS = ("rules", "openai", "transformers", "video-llm")
DETECTOR_BACKENDS = ("grounding-dino", "owlv2", "opencv")
BASELINE_ANALYZERS = ("rules",)
BASELINE_DETECTORS = ("opencv",)
# The paper uses Grounded-SAM2 without naming checkpoints; these are Grounded-SAM2's own demo choices.
DEFAULT_DETECTOR_MODELS = {"grounding-dino": "IDEA-Research/grounding-dino-tiny"}
DEFAULT_SAM2_MODEL = "facebook/sam2.1-hiera-large"


class StartupError(RuntimeError):
    """A stage cannot start (model weights missing, endpoint unreachable): nothing was run.

    ``ravst build`` turns it into exit code 2 with this message."""


def _h(text: str, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    if default is dataclasses.MISSING:
        return field(metadata={"help": text}, **kw)
    return field(default=default, metadata={"help": text}, **kw)


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{owner}.{name} must be > 0, got {value!r}")


def _unit(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{owner}.{name} must be in [0, 1], got {value!r}")


@dataclass(frozen=True)
class FilterConfig:
    """Paper step 1-3: duration groups, event count, event-to-total (ET) ratio."""

    group_bounds_s: tuple[float, ...] = _h(
        "upper bounds of the duration groups short / medium / long (paper: 0-20, 20-40, 40-60 s)",
        (20.0, 40.0, 60.0),
    )
    group_names: tuple[str, ...] = _h("names of the duration groups", ("short", "medium", "long"))
    min_video_s: float = _h("videos shorter than this are 'extremely short' and dropped", 5.0)
    min_event_s: float = _h("events shorter than this (after merging) are dropped", 0.0)
    merge_gap_s: float = _h("segments of the same label closer than this are merged into one", 0.0)
    merge_iou: float = _h(
        "events of different labels whose spans overlap with temporal IoU >= this are merged "
        "into one event carrying all the labels (1.01 disables)",
        0.5,
    )
    segment_rule: str = _h(
        "span of the ONE event a label group with several segments becomes: first (earliest "
        "segment, what the official test file shows) | longest | union (first start to last end)",
        "first",
    )
    et_over: str = _h("ET ratio over all annotated 'segments' or only the kept 'events'", "segments")
    max_events: int = _h("at most this many events (label groups, one event each) per video", 3)
    min_et_ratio: float = _h("drop videos whose event-to-total duration ratio is below this", 0.08)
    balance: bool = _h(
        "down-sample so that 1-, 2- and 3-event videos are equally many (per subset)", False
    )
    subsets: tuple[str, ...] = _h("keep only these subsets (empty: all)", ())
    seed: int = _h("seed of the balancing draw", 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_bounds_s", tuple(float(v) for v in self.group_bounds_s))
        object.__setattr__(self, "group_names", tuple(self.group_names))
        object.__setattr__(self, "subsets", tuple(self.subsets))
        if len(self.group_bounds_s) != len(self.group_names) or not self.group_bounds_s:
            raise ValueError("FilterConfig: group_bounds_s and group_names must have the same length")
        if list(self.group_bounds_s) != sorted(self.group_bounds_s):
            raise ValueError("FilterConfig.group_bounds_s must be increasing")
        if self.segment_rule not in ("first", "longest", "union"):
            raise ValueError(f"FilterConfig.segment_rule must be first|longest|union, got {self.segment_rule!r}")
        if self.et_over not in ("segments", "events"):
            raise ValueError(f"FilterConfig.et_over must be segments|events, got {self.et_over!r}")
        if self.max_events < 1:
            raise ValueError(f"FilterConfig.max_events must be >= 1, got {self.max_events}")
        if self.min_video_s < 0 or self.min_event_s < 0 or self.merge_gap_s < 0:
            raise ValueError("FilterConfig: min_video_s, min_event_s and merge_gap_s must be >= 0")
        if not 0.0 <= self.merge_iou <= 1.01:
            raise ValueError(f"FilterConfig.merge_iou must be in [0, 1.01], got {self.merge_iou}")
        _unit("FilterConfig", min_et_ratio=self.min_et_ratio)


@dataclass(frozen=True)
class AnalyzeConfig:
    """Caption analysis (paper Box 1)."""

    backend: str = _h("rules (offline, label-only baseline) | openai | transformers | video-llm (a Video-LLM "
                      "reads the caption AND the event's frames)", "rules")
    model: str = _h("model name (openai, video-llm with video_backend openai) or local path / hub id "
                    "(transformers, video-llm with transformers / vllm)", "gpt-4o-mini")
    base_url: str = _h("OpenAI-compatible endpoint (OpenAI, vLLM, Ollama)", "https://api.openai.com/v1")
    api_key_env: str = _h("environment variable holding the API key", "OPENAI_API_KEY")
    concurrency: int = _h("requests in flight at once (openai)", 4)
    max_retries: int = _h("retries of a failed request (429, 5xx, network) with back-off", 5)
    backoff_s: float = _h("first back-off delay; doubles at every retry", 1.0)
    timeout_s: float = _h("timeout of one request", 60.0)
    temperature: float = _h("sampling temperature (0: greedy)", 0.0)
    max_new_tokens: int = _h("longest answer (transformers / openai max_tokens)", 256)
    cache_path: str = _h("SQLite cache of answers keyed by model + prompt ('' = <out>/analyze/cache.sqlite)", "")
    captions_csv: str = _h("optional CSV video_id,event_index,caption (else the event label is the caption)", "")
    video_backend: str = _h("video-llm: the `ravst infer` backend that runs the Video-LLM: openai | transformers "
                            "| vllm", "openai")
    max_frames: int = _h("video-llm: at most this many frames of the event (1 s steps, spread evenly above it)", 8)
    video_max_pixels: int = _h("video-llm: largest H*W of a frame fed (qwen-vl-utils VIDEO_MAX_PIXELS)", 768 * 28 * 28)
    video_min_pixels: int = _h("video-llm: smallest H*W of a frame fed", 4 * 28 * 28)
    device: str = _h("transformers / video-llm transformers: cuda, cpu or auto", "auto")
    probe_timeout_s: float = _h("openai / video-llm openai: the endpoint is probed once at stage start with "
                                "this timeout; unreachable or refusing the key stops the stage at once", 10.0)

    def __post_init__(self) -> None:
        if self.backend not in ANALYZER_BACKENDS:
            raise ValueError(f"AnalyzeConfig.backend must be {'|'.join(ANALYZER_BACKENDS)}, got {self.backend!r}")
        if self.video_backend not in ("openai", "transformers", "vllm"):
            raise ValueError(f"AnalyzeConfig.video_backend must be openai|transformers|vllm, got {self.video_backend!r}")
        if self.concurrency < 1 or self.max_retries < 0 or self.max_new_tokens < 1 or self.max_frames < 1:
            raise ValueError("AnalyzeConfig: concurrency >= 1, max_retries >= 0, max_new_tokens >= 1, max_frames >= 1")
        if not 0 < self.video_min_pixels <= self.video_max_pixels:
            raise ValueError("AnalyzeConfig: 0 < video_min_pixels <= video_max_pixels")
        _positive("AnalyzeConfig", timeout_s=self.timeout_s, backoff_s=self.backoff_s,
                  probe_timeout_s=self.probe_timeout_s)

    @property
    def baseline(self) -> bool:
        """True for the label-only ``rules`` analyzer (subjects from the label text, not the video)."""
        return self.backend in BASELINE_ANALYZERS


@dataclass(frozen=True)
class AnnotateConfig:
    """Box annotation (paper appendix "Bounding Box Annotation")."""

    backend: str = _h("grounding-dino (paper, Grounded-SAM2) | owlv2 | opencv (CPU people/cat-only BASELINE, no "
                      "weights)", "grounding-dino")
    model: str = _h("local path or hub id (in the local Hugging Face cache) of the detector; empty: the default "
                    "checkpoint of the backend (grounding-dino: " + "IDEA-Research/grounding-dino-tiny" + ")", "")
    box_threshold: float = _h("minimum box confidence (paper BOX_THRESHOLD)", 0.4)
    text_threshold: float = _h("minimum text-to-label similarity (paper TEXT_THRESHOLD)", 0.3)
    step_s: float = _h("frames every this many seconds from each event's start", 1.0)
    time_decimals: int = _h("frame times are rounded to this many decimals (official: 1)", 1)
    max_side: int = _h("frames are shrunk to this longer side before detection (0: original)", 0)
    max_boxes: int = _h("at most this many boxes per object per frame", 3)
    device: str = _h("torch device of the detector", "cpu")
    require_audio: bool = _h("a video without an audio stream is a failure (the tasks are audio-visual)", True)
    sam2_model: str = _h("SAM2 video model (local path / hub id in the local cache) that fills frames where the "
                         "detector found nothing by tracking from the first detected frame; 'auto' = "
                         + DEFAULT_SAM2_MODEL + " with grounding-dino / owlv2, off with the opencv baseline; "
                         "'' or 'none' = off", "auto")
    video_exts: tuple[str, ...] = _h("extensions tried, in order", (".mp4", ".mkv", ".webm", ".avi", ".mov"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "video_exts", tuple(self.video_exts))
        if self.backend not in DETECTOR_BACKENDS:
            raise ValueError(f"AnnotateConfig.backend must be {'|'.join(DETECTOR_BACKENDS)}, got {self.backend!r}")
        _unit("AnnotateConfig", box_threshold=self.box_threshold, text_threshold=self.text_threshold)
        _positive("AnnotateConfig", step_s=self.step_s)
        if self.max_side < 0 or self.max_boxes < 1:
            raise ValueError("AnnotateConfig: max_side >= 0 and max_boxes >= 1")

    @property
    def baseline(self) -> bool:
        """True for a detector that is not an open-vocabulary one (``opencv``: people and cats only)."""
        return self.backend in BASELINE_DETECTORS

    @property
    def detector_model(self) -> str:
        """The detector checkpoint actually used ('' for opencv)."""
        if self.backend in BASELINE_DETECTORS:
            return ""
        return self.model or DEFAULT_DETECTOR_MODELS.get(self.backend, "")

    @property
    def sam2(self) -> str:
        """The SAM2 checkpoint actually used ('' = no propagation)."""
        if self.sam2_model.strip().lower() in ("", "none", "off"):
            return ""
        if self.sam2_model == "auto":
            return "" if self.baseline else DEFAULT_SAM2_MODEL
        return self.sam2_model


@dataclass(frozen=True)
class QAConfig:
    """QA generation: which of the three tasks, in the official templates."""

    temporal: bool = _h("generate 'When is the moment X makes sound and is visible?'", True)
    spatial_sounding: bool = _h("generate 'What visible object(s) make sound between S and E ...'", True)
    spatial_silent: bool = _h("generate 'What silent object(s) can be seen between S and E ...'", True)
    spatiotemporal: bool = _h("generate the spatio-temporal question per sounding object", True)
    require_boxes: tuple[str, ...] = _h(
        "QA kinds skipped when none of their answer boxes is non-empty (all [0,0,0,0] cannot be "
        "scored): any of spatiotemporal, spatial-sounding, spatial-silent; true = all three, "
        "false = none",
        ("spatiotemporal", "spatial-sounding"),
    )
    when_decimals: int = _h("decimals of <when> times (official: 1)", 1)
    unique_questions: bool = _h(
        "skip a QA whose question an earlier event of the same video already asked (two events "
        "with the same sounding object would otherwise ask one question with two answers)", True)
    flag_jump_frac: float = _h(
        "flag 'box_jump': an object's box centre moves more than this fraction of the frame diagonal between "
        "two consecutive frame times (1 s steps)", 0.5)
    flag_area_frac: float = _h("flag 'box_covers_frame': a box covers more than this fraction of the frame", 0.9)
    flag_min_found_frac: float = _h(
        "flag 'rarely_found': a sounding object has a box in fewer than this fraction of its event's frames", 0.3)
    same_box_iou: float = _h(
        "'silent_on_sounding': a silent object's box and a sounding object's box overlapping with at least "
        "this IoU are on the same thing", 0.5)
    same_box_frac: float = _h(
        "'silent_on_sounding': a silent object whose boxes are on a sounding object's (same_box_iou) in more "
        "than this fraction of the frames where both have a box is left out of the silent QA, and the "
        "sounding object's box QAs are flagged", 0.5)

    def __post_init__(self) -> None:
        kinds = ("spatiotemporal", "spatial-sounding", "spatial-silent")
        value: Any = self.require_boxes
        if isinstance(value, bool):
            value = kinds if value else ()
        elif isinstance(value, str):
            value = (value,)
        value = tuple(value)
        bad = [k for k in value if k not in kinds]
        if bad:
            raise ValueError(f"QAConfig.require_boxes: unknown kind(s) {bad}; known: {list(kinds)} (or true/false)")
        object.__setattr__(self, "require_boxes", value)
        _unit("QAConfig", flag_jump_frac=self.flag_jump_frac, flag_area_frac=self.flag_area_frac,
              flag_min_found_frac=self.flag_min_found_frac, same_box_iou=self.same_box_iou,
              same_box_frac=self.same_box_frac)
        if self.same_box_iou <= 0.0:
            raise ValueError(f"QAConfig.same_box_iou must be in (0, 1], got {self.same_box_iou!r}")


HF_VIDEO_MODES = ("symlink", "copy", "none")


@dataclass(frozen=True)
class SplitConfig:
    """Train / test split by video."""

    test_fraction: float = _h("share of QAs in the test split (paper Table 5: 1,633 / 8,166)", 0.2)
    seed: int = _h("seed of the video shuffle", 0)
    hf: bool = _h("also write the splits as a Hugging Face dataset folder split/hf/ (the `ravst export hf` "
                  "layout; `ravst build split --hf`)", False)
    hf_videos: str = _h("videos/ of split/hf/: symlink (to videos_dir), copy, or none (video_path null)", "symlink")
    hf_license: str = _h("licence id in the dataset card of split/hf/", "other")

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"SplitConfig.test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.hf_videos not in HF_VIDEO_MODES:
            raise ValueError(f"SplitConfig.hf_videos must be one of {', '.join(HF_VIDEO_MODES)}, got {self.hf_videos!r}")


@dataclass(frozen=True)
class StatsConfig:
    """Figure 3 plots and Table 1 counts."""

    top_categories: int = _h("categories shown in the duration-per-category plot", 30)
    wordcloud: bool = _h("draw the word cloud of categories (needs the wordcloud package)", True)


@dataclass(frozen=True)
class PipelineConfig:
    """Paths plus one section per stage."""

    out_dir: str = _h("output folder (one sub-folder per stage)", "build")
    annotations: str = _h("UnAV-100-style annotation JSON", "")
    videos_dir: str = _h("folder of the videos (annotate)", "")
    engine: str = _h("local (in-process, progress bar) | ray (analyze and annotate as Ray Data jobs)", "local")
    ray_concurrency: int = _h("engine ray: actors (each loads the model once) running analyze / annotate", 1)
    filter: FilterConfig = field(default_factory=FilterConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    qa: QAConfig = field(default_factory=QAConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)

    def __post_init__(self) -> None:
        if self.engine not in ("local", "ray"):
            raise ValueError(f"PipelineConfig.engine must be local|ray, got {self.engine!r}")
        if self.ray_concurrency < 1:
            raise ValueError(f"PipelineConfig.ray_concurrency must be >= 1, got {self.ray_concurrency}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> PipelineConfig:
        sections = {"filter": FilterConfig, "analyze": AnalyzeConfig, "annotate": AnnotateConfig,
                    "qa": QAConfig, "split": SplitConfig, "stats": StatsConfig}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{source}: unknown config key(s) {sorted(unknown)}; known: {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in sections:
                section = sections[key]
                names = {f.name for f in dataclasses.fields(section)}
                bad = set(value or {}) - names
                if bad:
                    raise ValueError(f"{source}: unknown key(s) {sorted(bad)} in section {key!r}")
                kwargs[key] = section(**(value or {}))
            else:
                kwargs[key] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path) -> PipelineConfig:
    """Read a YAML (``.yaml``/``.yml``) or JSON (``.json``) config file; any other name is read
    as YAML (a superset of JSON). Errors name the file (and line, for a syntax error)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: cannot read the config: {exc}") from exc
    if p.suffix == ".json":
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ValueError(f"{p}: {at}invalid YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a config must be a mapping of sections, got {type(data).__name__}")
    try:
        return PipelineConfig.from_dict(data, source=str(p))
    except TypeError as exc:  # e.g. a section that is a list instead of a mapping
        raise ValueError(f"{p}: {exc}") from exc
    except ValueError as exc:
        raise ValueError(exc if str(exc).startswith(str(p)) else f"{p}: {exc}") from exc


def config_fingerprint(section: Any) -> str:
    """Stable hash of a config section (what a stage's manifest records)."""
    import hashlib

    payload = json.dumps(dataclasses.asdict(section), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
