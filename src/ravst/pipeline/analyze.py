"""Stage "analyze" (paper "Caption Analysis", appendix Box 1): objects of each event caption.

The analyzer reads an event caption and names its key subjects, each "visible & audible" or
"visible-only", in the Box 1 output format; :func:`parse_analysis` reads that format leniently.
Backends:

- ``rules`` (default): offline and deterministic, a small lexicon plus rules. Labels: a subject
  is the noun phrase before the first verb in -ing ("dog barking" -> dog, audible); "playing/
  driving/using X" makes X the sounding object and adds a visible-only "person"; waves, rain
  and water sound, wind and thunder name what is seen. Sentences (user captions), clause by
  clause (split at commas, "while", "as", ...): the subject noun phrase(s) before the verb
  sound ("a train passes by a crossing" -> train audible, crossing silent); with an
  instrument verb ("a man plays the piano") the object sounds and the subject is seen; nouns
  after prepositions are seen; phrases describing the subject ("a man in a blue shirt") are
  not objects. The answer is written in the Box 1 format and read back with the same parser
  as an LLM's.
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
>>> [(o.name, o.audible) for o in parse_analysis(rules_answer("a train passes by a crossing")).objects]
[('train', True), ('crossing', False)]
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ravst.pipeline.config import AnalyzeConfig, StartupError
from ravst.types import ObjectMention

__all__ = [
    "BOX1_PROMPT",
    "Analysis",
    "AnswerCache",
    "OpenAIAnalyzer",
    "TransformersAnalyzer",
    "VideoLLMAnalyzer",
    "analyze_record",
    "build_prompt",
    "event_captions",
    "make_analyzer",
    "parse_analysis",
    "probe_endpoint",
    "rules_answer",
    "write_event_clip",
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
# environment labels: (subject, audible). Waves, rain and water are seen making their sound (the
# official file asks "When is the moment waves / Rain / water makes sound"); wind and thunder are
# not visible themselves, so only what they move / where they are is named, silent.
_ENVIRONMENT = {"raining": ("rain", True), "thunder": ("sky", False), "wind noise": ("trees", False),
                "sea waves": ("waves", True), "water burbling": ("water", True)}
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


# ------------------------------------------------ sentences (user captions): a small lexicon
_DETERMINERS = {"a", "an", "the", "some", "two", "three", "four", "several", "many", "his", "her", "their",
                "its", "this", "that", "these", "those", "another", "other", "one", "each", "my", "our", "your"}
_PREPOSITIONS = {"on", "with", "in", "at", "by", "near", "into", "onto", "under", "over", "behind", "beside",
                 "across", "through", "along", "from", "to", "toward", "towards", "around", "inside", "outside",
                 "against", "next", "past", "beneath", "above", "below", "down", "up", "off", "for", "about"}
_CLAUSE_BREAK = re.compile(r"\s*(?:[,;]|\bwhile\b|\bwhereas\b|\bwhen\b|\bas\b|\bbut\b|\band then\b|"
                           r"\bthen\b|\bbefore\b|\bafter\b)\s*", re.IGNORECASE)
_AUX = {"is", "are", "was", "were", "be", "being", "been", "can", "could", "will", "would", "starts", "start",
        "keeps", "keep", "begins", "begin"}
# verbs whose direct object makes the sound (the subject is seen doing it): "a man plays the piano"
_INSTRUMENT_BASES = {"play", "strum", "strike", "hit", "beat", "bang", "blow", "ring", "drive", "ride", "use",
                     "type", "hammer", "knock", "tap", "honk", "pluck", "rev", "operate", "start", "shake"}
_VERB_BASES = _INSTRUMENT_BASES | {
    "speak", "talk", "say", "sing", "shout", "yell", "scream", "cry", "laugh", "giggle", "cough", "sneeze",
    "whisper", "chat", "call", "bark", "meow", "purr", "moo", "roar", "growl", "howl", "chirp", "tweet",
    "crow", "quack", "buzz", "hum", "hiss", "whistle", "clap", "cheer", "applaud", "pass", "fly", "run",
    "walk", "move", "roll", "fall", "crash", "splash", "flow", "pour", "drip", "rumble", "click", "tick",
    "dance", "jump", "bounce", "kick", "throw", "eat", "chew", "drink", "burp", "snore", "breathe", "cut",
    "saw", "chop", "mow", "idle", "approach", "go", "come", "sail", "skate", "swim", "perform", "sit",
    "stand", "hold", "watch", "make", "produce", "emit", "crackle", "sizzle", "boil", "fire", "explode",
    "shoot", "beep", "chime", "toll", "trot", "gallop", "neigh", "bleat", "oink", "cluck", "croak", "squeak",
    "rustle", "pant", "snort", "wail", "sob", "shriek", "squeal", "play", "preach", "lecture", "announce",
    "race", "speed", "zoom", "land", "take", "leave", "arrive", "enter", "cross", "hop", "rattle", "clang",
    "thud", "slam", "scratch", "rub", "pound", "stomp", "tap", "flap", "wash", "scrub", "brush", "vacuum"}
_VERB_FORMS = {form for base in _VERB_BASES for form in (
    base, base + "s", base + "es", base + "ed", base + "d",
    base[:-1] + "ies" if base.endswith("y") else base)} | {
    "says", "flies", "cries", "ran", "fell", "sang", "spoke", "rang", "blew", "drove", "rode", "hit", "beat",
    "went", "came", "threw", "sat", "stood", "held", "made", "took", "left"}
_ADVERB = re.compile(r"^\w+ly$")


def _is_sentence(low: str) -> bool:
    """A user caption (a sentence) rather than a short UnAV-100-style label."""
    words = re.findall(r"[a-z'-]+", low)
    return (any(w in _DETERMINERS for w in words) or any(w in _VERB_FORMS and i > 0 for i, w in enumerate(words))
            or bool(re.search(r"[,;]|\bwhile\b", low)))


def _is_verb(words: list[str], i: int) -> bool:
    w = words[i]
    if i == 0 or words[i - 1] in _DETERMINERS or words[i - 1] in _PREPOSITIONS:
        return False  # a noun: "rain falls", "a hammer", "with a saw"
    if w in _AUX or w in _VERB_FORMS:
        return True
    return w.endswith("ing") and len(w) > 4 and w not in _NON_GERUND


def _base(verb: str) -> str:
    for suffix, repl in (("ies", "y"), ("ing", ""), ("es", ""), ("ed", ""), ("s", ""), ("d", "")):
        if verb.endswith(suffix) and (verb[: -len(suffix)] + repl) in _VERB_BASES:
            return verb[: -len(suffix)] + repl
    if verb.endswith("ing") and len(verb) > 5 and verb[-4] == verb[-5]:  # hitting, drumming
        return verb[:-4]
    if verb.endswith("ing") and verb[:-3] + "e" in _VERB_BASES:  # driving, riding
        return verb[:-3] + "e"
    return verb


def _noun_phrases(words: list[str]) -> list[str]:
    """Noun phrases of a run of words: determiners dropped, split at "and", cut at the first
    preposition (except "of": "group of people") or verb, adverbs skipped, at most 4 words."""
    out: list[str] = []
    current: list[str] = []
    for i, w in enumerate(words):
        if w == "and" or w in _PREPOSITIONS - {"of"} or (current and _is_verb(words, i)):
            if current:
                out.append(" ".join(current[:4]))
                current = []
            if w != "and":
                break
            continue
        if w in _DETERMINERS or _ADVERB.match(w) or w in _AUX:
            continue
        current.append(w)
    if current:
        out.append(" ".join(current[:4]))
    return [p for p in out if p and p not in _PREPOSITIONS and p != "of"]


def _sentence_subjects(text: str) -> list[tuple[str, bool]]:
    """Objects of a sentence caption, clause by clause: the subject noun phrase(s) before the
    verb sound; with an instrument verb ("plays", "hits", "drives") the direct object sounds and
    the subject is seen; nouns after prepositions are seen (silent). Phrases describing the
    subject before its verb ("a man in a blue shirt") are not objects."""
    found: list[tuple[str, bool]] = []
    for clause in _CLAUSE_BREAK.split(text):
        words = re.findall(r"[A-Za-z][A-Za-z'-]*", clause)
        low = [w.lower() for w in words]
        if not low:
            continue
        vi = next((i for i in range(len(low)) if _is_verb(low, i)), None)
        if vi is None:  # a bare noun phrase clause ("a dog and a cat")
            found.extend((np_, True) for np_ in _noun_phrases(low))
            continue
        head = low[:vi]
        cut = next((i for i, w in enumerate(head) if w in _PREPOSITIONS - {"of"} and i > 0), len(head))
        subject_nps = _noun_phrases(head[:cut]) or []
        while vi + 1 < len(low) and (low[vi] in _AUX) and _is_verb(low, vi + 1):
            vi += 1  # "is playing", "are sailing"
        rest = low[vi + 1:]
        direct_end = next((i for i, w in enumerate(rest) if w in _PREPOSITIONS), len(rest))
        direct = _noun_phrases(rest[:direct_end])
        instrument = _base(low[vi]) in _INSTRUMENT_BASES and bool(direct)
        if instrument and all(d in _SPORTS for d in direct):
            instrument, direct = False, []
        found.extend((np_, not instrument) for np_ in subject_nps)
        found.extend((np_, instrument) for np_ in direct)
        for i in range(direct_end, len(rest)):
            if rest[i] in _PREPOSITIONS and (i == direct_end or rest[i - 1] not in _PREPOSITIONS):
                found.extend((np_, False) for np_ in _noun_phrases(rest[i + 1:]))
    out: list[tuple[str, bool]] = []
    for name, audible in found:
        name = _SOUND_SUFFIX.sub("", name)
        match = next((k for k, (n, _) in enumerate(out) if n == name), None)
        if match is None:
            out.append((name, audible))
        elif audible:
            out[match] = (name, True)
    return out or [("person", True)]


def rules_answer(caption: str) -> str:
    """A deterministic Box 1-format answer for a caption (an event label or a short sentence)."""
    text = re.sub(r"\s+", " ", caption.strip().rstrip("."))
    low = text.lower()
    subjects: list[tuple[str, bool]] = []
    if low in _LABEL_OVERRIDES:
        subjects.extend(_LABEL_OVERRIDES[low])
    elif low in _ENVIRONMENT:
        subjects.append(_ENVIRONMENT[low])
    elif _is_sentence(low):
        subjects.extend(_sentence_subjects(text))
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
def probe_endpoint(base_url: str, api_key: str, timeout_s: float) -> None:
    """Probe an OpenAI-compatible endpoint ONCE (``GET {base_url}/models``, no retries): a
    network error or a refused key is a :class:`StartupError`; any other answer means the server
    is there (some servers have no ``/models``)."""
    import httpx

    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise StartupError(f"analyze: cannot start: the endpoint {base_url} does not answer ({type(exc).__name__}: "
                           f"{exc}; probed once at stage start, {timeout_s:g} s timeout). Ways on: start the server "
                           "or fix analyze.base_url, or --analyzer rules (a label-only baseline)") from exc
    if response.status_code in (401, 403):
        raise StartupError(f"analyze: cannot start: {url} refused the API key (HTTP {response.status_code}); set "
                           "the variable named by analyze.api_key_env")



class OpenAIAnalyzer:
    """Chat completions on an OpenAI-compatible endpoint, cached, retried, concurrent."""

    def __init__(self, cfg: AnalyzeConfig, cache: AnswerCache, *, cache_only: bool = False,
                 errors: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.cache = cache
        self.cache_only = cache_only
        self.errors = dict(errors or {})
        self.api_key = os.environ.get(cfg.api_key_env, "")
        if not self.api_key and not cache_only:
            log.warning("%s is not set; sending requests without an API key", cfg.api_key_env)

    def probe(self) -> None:
        """One quick request at stage start; see :func:`probe_endpoint`."""
        probe_endpoint(self.cfg.base_url, self.api_key, self.cfg.probe_timeout_s)

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
        key = AnswerCache.key(self.cfg.model, messages)
        if self.cache_only:
            raise RuntimeError(f"analyzer request for caption {caption!r} failed: "
                               f"{self.errors.get(key, 'no answer in the cache')} (a re-run retries it)")
        answer = self._request(messages)
        self.cache.put(self.cfg.model, messages, answer)
        return answer

    def prefetch(self, captions: Sequence[str], progress: bool = True) -> dict[str, str]:
        """Answer many captions with at most ``concurrency`` requests in flight; failures are
        logged and left out (the stage records them per video); ``self.errors`` keeps their
        reasons under the cache key."""
        from tqdm import tqdm

        unique = list(dict.fromkeys(captions))
        out: dict[str, str] = {}

        def one(caption: str) -> tuple[str, str | None]:
            try:
                return caption, self(caption)
            except (ValueError, RuntimeError) as exc:
                log.warning("caption %r: %s", caption, exc)
                self.errors[AnswerCache.key(self.cfg.model, build_prompt(caption))] = f"{type(exc).__name__}: {exc}"
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


# ---------------------------------------------------------------- video-llm backend
VIDEO_NOTE = ("The frames above are the event. Name as key subjects only entities that are visible in these "
              "frames, each with its label, in the output format above.")


def _spread(times: list[float], most: int) -> list[float]:
    if len(times) <= most:
        return times
    step = (len(times) - 1) / (most - 1) if most > 1 else 0.0
    return [times[round(k * step)] for k in range(most)]


def write_event_clip(video_path: str | Path, times_s: Sequence[float], out_path: Path, *, max_side: int = 640) -> Path:
    """The frames of ``video_path`` at ``times_s`` as a small 1 fps MPEG-4 clip (what a Video-LLM
    backend of ``ravst infer`` reads). Raises MediaError for an unreadable video."""
    import av
    import numpy as np

    from ravst.media.video import iter_frames_at

    frames = [image for _, image in iter_frames_at(video_path, sorted(times_s), max_side=max_side)]
    if not frames:
        raise ValueError(f"{video_path}: no frame at {list(times_s)}")
    height, width = (frames[0].shape[0] // 2) * 2, (frames[0].shape[1] // 2) * 2
    with av.open(str(out_path), "w") as container:
        stream = container.add_stream("mpeg4", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"qscale": "2"}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out_path


class VideoLLMAnalyzer:
    """Box 1 plus the event's frames to a Video-LLM through a ``ravst infer`` backend
    (``video_backend``: openai, transformers, vllm), so subjects come from what is visible, not
    from the label alone. The event's frames (1 s steps, at most ``max_frames``) are written as
    a small clip and fed through the backend's own ``predict``; answers are cached under
    sha256(model + messages + video + frame times). Built at stage start: the model is loaded or
    the endpoint probed once (:class:`StartupError` on failure)."""

    def __init__(self, cfg: AnalyzeConfig, cache: AnswerCache, videos_dir: str | Path, *,
                 cache_only: bool = False, errors: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.cache = cache
        self.videos_dir = Path(videos_dir) if videos_dir else None
        self.cache_only = cache_only
        self.errors = dict(errors or {})
        self.backend: Any = None if cache_only else self._backend()

    def _backend(self) -> Any:
        from ravst.models.qwen import GenerationSettings
        from ravst.models.sampling import FPS_MIN_FRAMES, SamplingConfig

        cfg = self.cfg
        sampling = SamplingConfig(fps=1.0, max_frames=cfg.max_frames, min_frames=min(FPS_MIN_FRAMES, cfg.max_frames),
                                  min_pixels=cfg.video_min_pixels, max_pixels=cfg.video_max_pixels)
        generation = GenerationSettings(max_new_tokens=cfg.max_new_tokens, do_sample=cfg.temperature > 0,
                                        temperature=cfg.temperature or 1.0)
        what = f"analyze: cannot start the video-llm analyzer ({cfg.video_backend} {cfg.model!r})"
        ways = "Ways on: analyze.model pointing at a local Video-LLM folder, or --analyzer rules (a label-only baseline)"
        if cfg.video_backend == "openai":
            from ravst.models.openai_backend import OpenAIBackend

            api_key = os.environ.get(cfg.api_key_env, "")
            probe_endpoint(cfg.base_url, api_key, cfg.probe_timeout_s)
            return OpenAIBackend(cfg.model, base_url=cfg.base_url, api_key=api_key, sampling=sampling,
                                 generation=generation, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries,
                                 concurrency=1)
        try:
            if cfg.video_backend == "transformers":
                from ravst.models.qwen import QwenBackend

                return QwenBackend(cfg.model, sampling=sampling, generation=generation, use_audio=False,
                                   device=cfg.device)
            from ravst.models.vllm_backend import VllmBackend

            return VllmBackend(cfg.model, sampling=sampling, generation=generation, use_audio=False)
        except (OSError, ValueError, RuntimeError, ImportError, KeyError) as exc:
            raise StartupError(f"{what}: {type(exc).__name__}: {exc}. {ways}") from exc

    def messages(self, video_id: str, event: dict[str, Any], caption: str) -> tuple[list[dict[str, str]], list[float]]:
        """The Box 1 messages (the cache key's) and the event's frame times."""
        from ravst.pipeline.annotate import event_frame_times

        times = _spread(event_frame_times(event["start_s"], event["end_s"]) or [round(float(event["start_s"]), 1)],
                        self.cfg.max_frames)
        user = f"Caption: {caption}\n{VIDEO_NOTE}"
        frames = {"role": "video", "content": f"{video_id} at {', '.join(f'{t:g}' for t in times)} s"}
        return [{"role": "system", "content": BOX1_PROMPT}, frames, {"role": "user", "content": user}], times

    def ask_event(self, record: dict[str, Any], event: dict[str, Any], caption: str) -> str:
        import tempfile

        from ravst.models.base import InferRequest
        from ravst.pipeline.annotate import find_video
        from ravst.types import Answer, QAItem, Task

        video_id = record["video_id"]
        messages, times = self.messages(video_id, event, caption)
        cached = self.cache.get(self.cfg.model, messages)
        if cached is not None:
            return cached
        key = AnswerCache.key(self.cfg.model, messages)
        if self.cache_only or self.backend is None:
            raise RuntimeError(f"video-llm analyzer request for {video_id} event {event.get('index', '?')} failed: "
                               f"{self.errors.get(key, 'no answer in the cache')} (a re-run retries it)")
        if self.videos_dir is None:
            raise ValueError("analyze.backend video-llm needs the videos: set 'videos_dir' (or --videos)")
        from ravst.pipeline.config import AnnotateConfig

        path = find_video(self.videos_dir, video_id, AnnotateConfig().video_exts)
        item = QAItem(qa_id=f"analyze:{video_id}/{event.get('index', 0)}", video=video_id,
                      duration_s=float(record.get("duration_s") or 0.0), event_index=int(event.get("index", 0)),
                      event_num=int(event.get("index", 0)) + 1, task=Task.TEMPORAL, k=0, question=caption,
                      answer=Answer())
        with tempfile.TemporaryDirectory(prefix="ravst-analyze-") as tmp:
            clip = write_event_clip(path, times, Path(tmp) / "event.mp4")
            request = InferRequest(item=item, video_path=clip, system=messages[0]["content"],
                                   user=messages[2]["content"])
            prediction = self.backend.predict([request])[0]
        answer = str(prediction.text)
        self.cache.put(self.cfg.model, messages, answer)
        return answer

    def prefetch(self, jobs: Sequence[tuple[dict[str, Any], dict[str, Any], str]], progress: bool = True) -> int:
        """Answer every (record, event, caption) job, ``concurrency`` at a time for an endpoint
        (one at a time for a local model); failures are kept in ``self.errors`` (the stage
        records them per video) and the rest go on. Returns the number answered."""
        from tqdm import tqdm

        from ravst.media.video import MediaError

        def one(job: tuple[dict[str, Any], dict[str, Any], str]) -> bool:
            record, event, caption = job
            try:
                self.ask_event(record, event, caption)
                return True
            except (MediaError, ValueError, RuntimeError, OSError) as exc:
                log.warning("video %s event %s: %s", record["video_id"], event.get("index"), exc)
                key = AnswerCache.key(self.cfg.model, self.messages(record["video_id"], event, caption)[0])
                self.errors[key] = f"{type(exc).__name__}: {exc}"
                return False

        workers = self.cfg.concurrency if self.cfg.video_backend == "openai" else 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return sum(tqdm(pool.map(one, jobs), total=len(jobs), desc="analyze", disable=not progress))

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


def make_analyzer(cfg: AnalyzeConfig, cache_path: str | Path, *, videos_dir: str | Path = "",
                  cache_only: bool = False, errors: dict[str, str] | None = None) -> Any:
    """The backend named by ``cfg.backend``: a ``caption -> answer text`` callable (video-llm:
    an object with ``ask_event(record, event, caption)``). With ``cache_only`` an LLM backend
    answers from the cache and never sends a request (the stage prefetched everything)."""
    if cfg.backend == "rules":
        return rules_answer
    cache = AnswerCache(cfg.cache_path or cache_path)
    if cfg.backend == "openai":
        return OpenAIAnalyzer(cfg, cache, cache_only=cache_only, errors=errors)
    if cfg.backend == "video-llm":
        return VideoLLMAnalyzer(cfg, cache, videos_dir, cache_only=cache_only, errors=errors)
    try:
        return TransformersAnalyzer(cfg, cache)
    except (OSError, ValueError, RuntimeError, ImportError, KeyError) as exc:
        raise StartupError(f"analyze: cannot load the transformers analyzer {cfg.model!r}: {type(exc).__name__}: "
                           f"{exc}. Ways on: analyze.model / --model pointing at a local instruct model folder, or "
                           "--analyzer rules (a label-only baseline)") from exc


def event_captions(record: dict[str, Any], event: dict[str, Any],
                   captions: dict[tuple[str, int], str] | None = None) -> list[str]:
    """Every text an event is analyzed from: the user's captions of its source segments, else its
    annotated caption, else EACH of its labels (a merged event of "male singing" and "playing
    piano" is analyzed from both).

    >>> event_captions({"video_id": "v"}, {"label": "male singing", "labels": ["male singing", "playing piano"]})
    ['male singing', 'playing piano']
    """
    user = [captions[(record["video_id"], i)] for i in event.get("source_indices", [])
            if captions and (record["video_id"], i) in captions]
    if user:
        return list(dict.fromkeys(user))
    if event.get("caption"):
        return [str(event["caption"])]
    return list(dict.fromkeys(event.get("labels") or [event["label"]]))


def analyze_record(record: dict[str, Any], analyzer: Any,
                   captions: dict[tuple[str, int], str] | None = None) -> dict[str, Any]:
    """A filter record with ``caption_used``, ``analysis`` (raw answer), ``objects`` and
    ``analysis_issues`` added to every event; an event of several labels / captions is analyzed
    from each (``analyses``: one ``{"caption", "answer"}`` per text) and its objects are the
    union (an object sounding in any of them sounds). Raises ValueError when no event has an
    object."""
    out = dict(record)
    events = []
    ask_event = getattr(analyzer, "ask_event", None)
    for event in record["events"]:
        ev = dict(event)
        texts = event_captions(record, event, captions)
        objects: dict[str, dict[str, Any]] = {}
        issues: list[str] = []
        analyses = []
        for caption in texts:
            answer = ask_event(record, event, caption) if ask_event is not None else analyzer(caption)
            parsed = parse_analysis(answer)
            analyses.append({"caption": caption, "answer": answer})
            issues += [f"{caption}: {i}" if len(texts) > 1 else i for i in parsed.issues]
            for o in parsed.objects:
                seen = objects.get(o.name.lower())
                if seen is None:
                    objects[o.name.lower()] = {"name": o.name, "audible": o.audible}
                elif o.audible:
                    seen["audible"] = True
        ev.update(caption_used="; ".join(texts), analysis="\n\n".join(a["answer"] for a in analyses),
                  analyses=analyses, analysis_issues=issues, objects=list(objects.values()))
        events.append(ev)
    if not any(ev["objects"] for ev in events):
        raise ValueError(f"video {record['video_id']}: the analyzer found no visible object in any event")
    out["events"] = events
    return out
