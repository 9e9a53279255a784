"""Stage "analyze" (paper "Caption Analysis", appendix Box 1): objects of each event caption.

The analyzer reads an event caption and names its key subjects, each "visible & audible" or
"visible-only", in the Box 1 output format; :func:`parse_analysis` reads that format leniently.
Backends:

- ``rules`` (default): offline and deterministic. A subject is the noun phrase before the first
  verb in -ing ("dog barking" -> dog, audible); "playing/driving/using X" makes X the sounding
  object and adds a visible-only "person"; phrases after "on/with/in" are visible-only. The
  answer is written in the Box 1 format and read back with the same parser as an LLM's.
- ``openai``: any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama); key from the
  environment; bounded concurrency; retries with exponential back-off on 429 / 5xx / network
  errors; every answer cached in SQLite under sha256(model + prompt) so a re-run costs nothing.
- ``transformers``: a local instruct model (path or hub id), greedy decoding.

The caption of an event is the user's (captions CSV) or its UnAV-100 label.

>>> a = parse_analysis("Key Subjects:\\n**Dog** - visible & audible\\n2. a red car – Visible-only\\nSubject Number: 2")
>>> [(o.name, o.audible) for o in a.objects], a.subject_number, a.issues
([('Dog', True), ('a red car', False)], 2, ())
>>> [(o.name, o.audible) for o in parse_analysis(rules_answer("playing cello")).objects]
[('cello', True), ('person', False)]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ravst.pipeline.config import AnalyzeConfig
from ravst.types import ObjectMention

__all__ = [
    "BOX1_PROMPT",
    "Analysis",
    "AnswerCache",
    "OpenAIAnalyzer",
    "TransformersAnalyzer",
    "build_prompt",
    "make_analyzer",
    "parse_analysis",
    "rules_answer",
]

log = logging.getLogger(__name__)

# Box 1 of the paper, word for word (line breaks restored where the paper's layout had them).
BOX1_PROMPT = """You are an AI assistant specialized in caption component analysis. Given a caption, complete the following tasks:
1. Key Subject Identification
Identify the key subjects mentioned in the caption.
Definition: Key subjects are dominant, dynamic, or sound-producing (and visible) objects that play a leading role in the event described by the caption.
Important Principles:
A key subject must be a concrete entity (agent) that can be meaningfully associated with an action or sound. For example, in “A person is shouting,” the key subject is “a person”, not “shouting”.
Verbs or actions are not subjects unless they can be directly attributed to a specific agent.
Prioritize:
Dynamic entities (e.g., people, animals, moving vehicles),
Visible & sound-producing entities,
Include static or silent entities only if no dynamic/sound-producing entities exist.
2. Labeling
Assign one label to each key subject:
visible-only: If the entity is only visible and not producing sound.
visible & audible: If the entity is both visible and producing sound.
Do not assign audible-only to vague or environmental sounds (like “noise”, “shouting”).
3. Output Format
Present the analysis in the following structured format:
Key Subjects:
[Entity Name] - [Label: visible-only / audible-only / visible & audible]
[Entity Name] - [Label: visible-only / audible-only / visible & audible]
Subject Number: [Number of key subjects]
Important Instructions:
Base your analysis strictly on the caption content.
Do not assume or infer based on background knowledge or unstated context.
Avoid speculative interpretation.
Stick to explicitly mentioned or clearly implied entities.
Ensure formatting is clean, concise, and consistent.
Keep the output clean, concise, and consistently formatted."""


def build_prompt(caption: str) -> list[dict[str, str]]:
    """Chat messages for one caption: Box 1 as the system prompt, the caption as the user turn."""
    return [{"role": "system", "content": BOX1_PROMPT}, {"role": "user", "content": f"Caption: {caption}"}]


@dataclass(frozen=True)
class Analysis:
    """What :func:`parse_analysis` read: visible objects, the stated number, problems found."""

    objects: tuple[ObjectMention, ...]
    subject_number: int | None
    issues: tuple[str, ...]


_LABEL = re.compile(
    r"(visible\s*(?:&|and|\+|/)\s*audible|audible\s*(?:&|and|\+|/)\s*visible|visible[\s_-]*only|audible[\s_-]*only)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"subject\s*number\s*[:=\-]?\s*\**\s*\[?\s*(\d+)", re.IGNORECASE)
_HEADER = re.compile(r"^\W*key\s*subjects?\W*$", re.IGNORECASE)
_STRIP = " \t*_`\"'“”‘’[]()-–—:•·#>"


def _clean_name(raw: str) -> str:
    name = re.sub(r"^\s*(?:[-*•·]|\d+[.)])\s*", "", raw)
    name = re.sub(r"(?i)\b(entity\s*name|label)\s*:", "", name)
    name = name.strip(_STRIP)
    return re.sub(r"\s+", " ", name)


def parse_analysis(text: str) -> Analysis:
    """Read an analyzer answer; tolerant of markdown, numbering, dashes, brackets, "Label:",
    "and"/"&", and of the subjects on the header line. Never raises. Audible-only subjects are
    dropped (the tasks need visible objects) and reported in ``issues``."""
    issues: list[str] = []
    if not isinstance(text, str):
        return Analysis((), None, (f"not a string: {type(text).__name__}",))
    m = _NUMBER.search(text)
    number = int(m.group(1)) if m else None
    body = text[: m.start()] if m else text
    objects: list[ObjectMention] = []
    seen: set[str] = set()
    for line in re.split(r"[\n;]+", body):
        if _HEADER.match(line):
            continue
        line = re.sub(r"(?i)^\W*key\s*subjects?\s*:", "", line)
        label = _LABEL.search(line)
        if not label:
            continue
        kind = re.sub(r"[\s_-]+", " ", label.group(1).lower())
        name = _clean_name(line[: label.start()])
        if not name:
            issues.append(f"no entity name before label in {line.strip()!r}")
            continue
        if kind.startswith("audible") and "only" in kind:
            issues.append(f"audible-only subject dropped: {name!r}")
            continue
        audible = "audible" in kind
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        objects.append(ObjectMention(name, audible))
    if number is None:
        issues.append("no 'Subject Number'")
    elif number != len(objects) and not any("audible-only" in i for i in issues):
        issues.append(f"Subject Number {number} but {len(objects)} subject(s) read")
    if not objects:
        issues.append("no subject with a visible label")
    return Analysis(tuple(objects), number, tuple(issues))


# ---------------------------------------------------------------- rules backend
_ARTICLES = re.compile(r"^(?:a|an|the|some|two|three|several|many|group of|a group of)\s+", re.IGNORECASE)
_INSTRUMENT_VERBS = ("playing", "driving", "using", "riding", "striking", "typing on", "hammering", "chainsawing")
_SPORTS = {"badminton", "tennis", "table tennis", "volleyball", "basketball", "football", "soccer"}
_PERSON_ACTIVITIES = {"beat boxing", "rope skipping", "tap dancing", "skateboarding", "sailing", "lawn mowing"}
_PERSON_ACTIVITY_SUBJECT = {"sailing": "sailboat", "lawn mowing": "lawn mower", "skateboarding": "skateboard"}
_ENVIRONMENT = {"raining": "rain", "thunder": "sky", "wind noise": "trees", "sea waves": "sea waves",
                "water burbling": "water"}
# UnAV-100 labels that the generic rules read wrongly (label -> subjects, audible)
_LABEL_OVERRIDES: dict[str, list[tuple[str, bool]]] = {
    "female singing": [("woman", True)],
    "male singing": [("man", True)],
    "singing choir": [("choir", True)],
    "chainsawing trees": [("chainsaw", True), ("person", False)],
    "hammering nails": [("hammer", True), ("person", False)],
    "striking bowling": [("bowling ball", True), ("person", False)],
    "basketball bounce": [("basketball", True), ("person", False)],
    "people nose blowing": [("people", True)],
    "skidding": [("car", True)],
    "auto racing": [("racing car", True)],
    "lions roaring": [("lion", True)],
}
# trailing sound nouns: "ambulance siren" -> ambulance
_SOUND_SUFFIX = re.compile(r"\s+(?:siren|flyby|laughter|bounce|clip-clop|battle cry|crowd|noise|sound)$", re.IGNORECASE)
_STOP = re.compile(r"\b(?:on|with|in|at|by|near|and|while|of|to|from|is|are)\b.*$", re.IGNORECASE)
_NON_GERUND = {"thing", "king", "ring", "wing", "spring", "string", "building", "ceiling", "morning", "evening",
               "clothing", "painting", "darling", "pudding", "sibling", "ding"}
_VERB = re.compile(r"\b(\w+ing|is|are|was|were|makes?|plays?|sings?|barks?|speaks?)\b", re.IGNORECASE)


def _singular(noun: str) -> str:
    if noun.endswith("ies") and len(noun) > 4:
        return noun[:-3] + "y"
    if noun.endswith(("ses", "xes", "ches", "shes")):
        return noun[:-2]
    if noun.endswith("s") and not noun.endswith(("ss", "us", "is")) and noun not in {"people", "sea waves"}:
        return noun[:-1]
    return noun


def _phrase(text: str) -> str:
    return _ARTICLES.sub("", text.strip(" ,.")).strip()


def rules_answer(caption: str) -> str:
    """A deterministic Box 1-format answer for a caption (an event label or a short sentence)."""
    text = re.sub(r"\s+", " ", caption.strip().rstrip("."))
    low = text.lower()
    subjects: list[tuple[str, bool]] = []
    if low in _LABEL_OVERRIDES:
        subjects.extend(_LABEL_OVERRIDES[low])
    elif low in _ENVIRONMENT:
        subjects.append((_ENVIRONMENT[low], False))
    elif low in _PERSON_ACTIVITIES:
        subjects.append(("person", True))
        if low in _PERSON_ACTIVITY_SUBJECT:
            subjects.append((_PERSON_ACTIVITY_SUBJECT[low], low != "sailing"))
    else:
        verb = next((v for v in _INSTRUMENT_VERBS if low.startswith(v + " ")), None)
        if verb is not None:
            thing = _phrase(text[len(verb) + 1 :])
            if thing.lower() in _SPORTS:
                subjects.append(("person", True))
            else:
                subjects.append((_singular(thing), True))
                subjects.append(("person", False))
        else:
            m = next((m for m in _VERB.finditer(text) if m.group(1).lower() not in _NON_GERUND), None)
            head = text[: m.start()] if m else text
            rest = text[m.end():] if m else ""
            subject = _SOUND_SUFFIX.sub("", _phrase(head)) or "person"
            subjects.append((subject, True))
            for prep in re.finditer(r"\b(?:on|with|in|at|by|near)\s+((?:\w+\s?){1,4})", rest):
                obj = _STOP.sub("", _phrase(prep.group(1))).strip()
                if obj and obj.lower() != subject.lower():
                    subjects.append((obj, False))
    lines = ["Key Subjects:"]
    lines += [f"{name} - {'visible & audible' if audible else 'visible-only'}" for name, audible in subjects]
    lines.append(f"Subject Number: {len(subjects)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- cache
class AnswerCache:
    """SQLite cache of analyzer answers keyed by sha256(model + prompt); safe across threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT, prompt TEXT, answer TEXT)")
        self._db.commit()

    @staticmethod
    def key(model: str, messages: Sequence[dict[str, str]]) -> str:
        payload = json.dumps({"model": model, "messages": list(messages)}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    def get(self, model: str, messages: Sequence[dict[str, str]]) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT answer FROM answers WHERE key = ?", (self.key(model, messages),)).fetchone()
        return None if row is None else str(row[0])

    def put(self, model: str, messages: Sequence[dict[str, str]], answer: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                             (self.key(model, messages), model, json.dumps(list(messages)), answer))
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ---------------------------------------------------------------- openai backend
class OpenAIAnalyzer:
    """Chat completions on an OpenAI-compatible endpoint, cached, retried, concurrent."""

    def __init__(self, cfg: AnalyzeConfig, cache: AnswerCache) -> None:
        self.cfg = cfg
        self.cache = cache
        self.api_key = os.environ.get(cfg.api_key_env, "")
        if not self.api_key:
            log.warning("%s is not set; sending requests without an API key", cfg.api_key_env)

    def _request(self, messages: list[dict[str, str]]) -> str:
        import httpx

        url = self.cfg.base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.cfg.model, "messages": messages, "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_new_tokens}
        delay = self.cfg.backoff_s
        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            try:
                response = httpx.post(url, json=body, headers=headers, timeout=self.cfg.timeout_s)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        return str(response.json()["choices"][0]["message"]["content"])
                    except (KeyError, IndexError, TypeError, ValueError) as exc:
                        raise ValueError(f"{url}: unexpected response {response.text[:200]!r}") from exc
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in (408, 409, 429) and response.status_code < 500:
                    raise ValueError(f"{url}: {last}")
            if attempt < self.cfg.max_retries:
                log.info("analyzer request failed (%s); retry %d in %.1f s", last, attempt + 1, delay)
                time.sleep(delay * (1.0 + 0.1 * random.random()))
                delay *= 2
        raise RuntimeError(f"{url}: giving up after {self.cfg.max_retries + 1} attempts: {last}")

    def __call__(self, caption: str) -> str:
        messages = build_prompt(caption)
        cached = self.cache.get(self.cfg.model, messages)
        if cached is not None:
            return cached
        answer = self._request(messages)
        self.cache.put(self.cfg.model, messages, answer)
        return answer

    def prefetch(self, captions: Sequence[str], progress: bool = True) -> dict[str, str]:
        """Answer many captions with at most ``concurrency`` requests in flight; failures are
        logged and left out (the stage records them per video)."""
        from tqdm import tqdm

        unique = list(dict.fromkeys(captions))
        out: dict[str, str] = {}

        def one(caption: str) -> tuple[str, str | None]:
            try:
                return caption, self(caption)
            except (ValueError, RuntimeError) as exc:
                log.warning("caption %r: %s", caption, exc)
                return caption, None

        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            for caption, answer in tqdm(pool.map(one, unique), total=len(unique), desc="analyze",
                                        disable=not progress):
                if answer is not None:
                    out[caption] = answer
        return out


# ---------------------------------------------------------------- transformers backend
class TransformersAnalyzer:
    """A local instruct model (path or hub id); greedy decoding; answers cached like openai."""

    def __init__(self, cfg: AnalyzeConfig, cache: AnswerCache | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        self.cache = cache
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        self.model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32).eval()

    def __call__(self, caption: str) -> str:
        import torch

        messages = build_prompt(caption)
        if self.cache is not None and (hit := self.cache.get(self.cfg.model, messages)) is not None:
            return hit
        tokenizer: Any = self.tokenizer
        if getattr(tokenizer, "chat_template", None):
            ids: Any = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True)["input_ids"]
        else:
            ids = tokenizer(BOX1_PROMPT + "\n\n" + messages[1]["content"] + "\n", return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.cfg.max_new_tokens,
                                      do_sample=False, pad_token_id=self.tokenizer.pad_token_id
                                      or self.tokenizer.eos_token_id)
        answer = str(self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
        if self.cache is not None:
            self.cache.put(self.cfg.model, messages, answer)
        return answer


def make_analyzer(cfg: AnalyzeConfig, cache_path: str | Path) -> Callable[[str], str]:
    """The backend named by ``cfg.backend`` as ``caption -> answer text``."""
    if cfg.backend == "rules":
        return rules_answer
    if cfg.backend == "openai":
        return OpenAIAnalyzer(cfg, AnswerCache(cfg.cache_path or cache_path))
    return TransformersAnalyzer(cfg, AnswerCache(cfg.cache_path or cache_path))


def analyze_record(record: dict[str, Any], analyzer: Callable[[str], str],
                   captions: dict[tuple[str, int], str] | None = None) -> dict[str, Any]:
    """A filter record with ``caption_used``, ``analysis`` (raw answer), ``objects`` and
    ``analysis_issues`` added to every event. Raises ValueError when no event has an object."""
    out = dict(record)
    events = []
    for event in record["events"]:
        ev = dict(event)
        user = [captions[(record["video_id"], i)] for i in ev.get("source_indices", [])
                if captions and (record["video_id"], i) in captions]
        caption = "; ".join(user) if user else (ev.get("caption") or ev["label"])
        answer = analyzer(caption)
        parsed = parse_analysis(answer)
        ev.update(caption_used=caption, analysis=answer, analysis_issues=list(parsed.issues),
                  objects=[{"name": o.name, "audible": o.audible} for o in parsed.objects])
        events.append(ev)
    if not any(ev["objects"] for ev in events):
        raise ValueError(f"video {record['video_id']}: the analyzer found no visible object in any event")
    out["events"] = events
    return out
