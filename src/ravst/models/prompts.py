"""Prompts: the paper's Box 2 instruction (default) and configurable templates.

A template has a ``system`` text (may be empty: the chat template's default system turn is then
used) and a ``user`` text; both may use the placeholders ``{question}``, ``{duration_s}`` (the
clip's length, 1 decimal), ``{video}`` (its name) and ``{instruction}`` (the Box 2 text). The
video (and, for Omni, its audio) goes before the user text, or after it when ``video_first`` is
False (the ``released`` template: what the released R-AVST trainer feeds).

>>> t = get_template("box2")
>>> t.render_user(question="When does the dog bark?", duration_s=12.0, video="v1")
'Q: When does the dog bark?\\n\\nPlease answer based on the video content using the specified XML-style format.'
>>> t.render_system() == BOX2_INSTRUCTION
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BOX2_INSTRUCTION",
    "BUILTIN_TEMPLATES",
    "QWEN_OMNI_SYSTEM",
    "RELEASED_QUESTION",
    "RELEASED_SYSTEM",
    "PromptTemplate",
    "get_template",
    "load_template",
]

# Paper, Box 2 ("Prompt Template for AVST-Zero Training and Inference"). The paper's text lost
# its line breaks and gained PDF-extraction artefacts (curly quotes, "dog </object>",
# "<where>for", "<when>and"); the text here has the line breaks and the spellings of the released
# trainer's SYSTEM_PROMPT (its words are the same), without that string's source indentation.
BOX2_INSTRUCTION = (
    "You are an expert in audio-visual video grounding.\n"
    "For each question, output within <answer></answer>:\n"
    "- <object>: grounded object(s), e.g. 'man', 'dog', separated by commas\n"
    "- <when>: [start, end] in seconds, 1 decimal\n"
    "- <where> for each object by each second within the object appearing duration:\n"
    "timestamp: [x1, y1, x2, y2]\n"
    "Only include tags <object>, <when> and <where>. No extra text.\n"
    "Example:\n"
    "<answer>\n"
    "<when>[10.0,20.5]</when>\n"
    "<object>dog</object>\n"
    "<where>\n"
    "10.0: [100,200,300,400]\n"
    "11.0: [109,280,320,432]\n"
    "12.0: [100,200,300,400]\n"
    "</where>\n"
    "<object>cat</object>\n"
    "<where>\n"
    "12.5: [50,60,150,160]\n"
    "13.5: [55,62,140,150]\n"
    "</where>\n"
    "</answer>"
)

# What the released trainer (zhlllau/R-AVST, AVST-Zero/src/open_r1/trainer/grpo_trainer_video_gqa.py,
# SYSTEM_PROMPT and QUESTION_TEMPLATE) feeds, character for character: its system prompt is a
# triple-quoted string whose lines keep 16 spaces of source indentation and blank lines; its
# question template is a triple-quoted string that keeps the quote characters and the indentation
# of what was meant as two concatenated literals. The question text comes BEFORE the video.
_IND = " " * 16
RELEASED_SYSTEM = "\n".join(
    [
        "You are an expert in audio-visual video grounding.",
        "",
        _IND + "For each question, output within <answer></answer>:",
        _IND + "- <object>: grounded object(s), e.g. 'man', 'dog', separated by commas",
        _IND + "- <when>: [start, end] in seconds, 1 decimal",
        _IND + "- <where> for each object by each second within the object appearing duration:",
        _IND + "timestamp: [x1, y1, x2, y2]",
        "",
        _IND + "Only include tags <object>, <when> and <where>. No extra text.",
        "",
        _IND + "Example:",
        *(
            _IND + line
            for line in (
                "<answer>",
                "<when>[10.0,20.5]</when>",
                "<object>dog</object>",
                "<where>",
                "10.0: [100,200,300,400]",
                "11.0: [109,280,320,432]",
                "12.0: [100,200,300,400]",
                "</where>",
                "<object>cat</object>",
                "<where>",
                "12.5: [50,60,150,160]",
                "13.5: [55,62,140,150]",
                "</where>",
                "</answer>",
            )
        ),
    ]
)
RELEASED_QUESTION = (
    "\n    'Q: {question}\n\n'\n    'Please answer based on the video content using the specified XML-style format.'\n"
)

# Qwen2.5-Omni's own system prompt, which the official Omni training code puts before Box 2.
QWEN_OMNI_SYSTEM = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)

# The question wrapper of the official AVST-Zero training code.
_OFFICIAL_QUESTION = "Q: {question}\n\nPlease answer based on the video content using the specified XML-style format."

_PLACEHOLDERS = ("question", "duration_s", "video", "instruction")


@dataclass(frozen=True)
class PromptTemplate:
    """A system text and a user text with ``{question}``-style placeholders."""

    name: str = field(metadata={"help": "name recorded in the predictions"})
    system: str = field(default="", metadata={"help": "system turn ('' = the chat template's default)"})
    user: str = field(default="{question}", metadata={"help": "user text (after the video by default)"})
    video_first: bool = field(
        default=True, metadata={"help": "the video goes before the user text (False: after it, as the release)"}
    )

    def __post_init__(self) -> None:
        if "{question}" not in self.user and "{question}" not in self.system:
            raise ValueError(f"prompt template {self.name!r}: no {{question}} placeholder in system or user text")
        for part in (self.system, self.user):
            try:
                part.format(**dict.fromkeys(_PLACEHOLDERS, ""))
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"prompt template {self.name!r}: bad placeholder ({exc}); allowed: {list(_PLACEHOLDERS)}"
                ) from exc

    def _values(self, question: str, duration_s: float, video: str) -> dict[str, str]:
        return {
            "question": question,
            "duration_s": f"{duration_s:.1f}",
            "video": video,
            "instruction": BOX2_INSTRUCTION,
        }

    def render_system(self, *, question: str = "", duration_s: float = 0.0, video: str = "") -> str:
        return self.system.format(**self._values(question, duration_s, video))

    def render_user(self, *, question: str, duration_s: float = 0.0, video: str = "") -> str:
        return self.user.format(**self._values(question, duration_s, video))


BUILTIN_TEMPLATES: dict[str, PromptTemplate] = {
    # default: Box 2 as the system turn, the official question wrapper as the user turn
    "box2": PromptTemplate("box2", system="{instruction}", user=_OFFICIAL_QUESTION),
    # Qwen2.5-Omni's system prompt, then Box 2 (the official Omni training code's system turn)
    "box2-omni": PromptTemplate("box2-omni", system=QWEN_OMNI_SYSTEM + "\n{instruction}", user=_OFFICIAL_QUESTION),
    # Box 2 in the user turn (for endpoints or models that ignore system prompts)
    "box2-user": PromptTemplate("box2-user", system="", user="{instruction}\n\n" + _OFFICIAL_QUESTION),
    # the question alone (zero-shot probing of a model's own answer style)
    "plain": PromptTemplate("plain", system="", user="{question}"),
    # exactly what the released R-AVST trainer feeds (its strings; question text before the video)
    "released": PromptTemplate("released", system=RELEASED_SYSTEM, user=RELEASED_QUESTION, video_first=False),
}


def get_template(name: str) -> PromptTemplate:
    """A built-in template by name."""
    try:
        return BUILTIN_TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown prompt template {name!r}; built-in: {sorted(BUILTIN_TEMPLATES)}") from None


def load_template(spec: str) -> PromptTemplate:
    """A built-in name, or a JSON / YAML file with ``user`` and optional ``system`` / ``name`` /
    ``video_first`` (default true)."""
    if spec in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[spec]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"prompt {spec!r} is neither a built-in template {sorted(BUILTIN_TEMPLATES)} nor a file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("user"), str):
        raise ValueError(
            f"{path}: a prompt file needs a string field 'user' (and optional 'system', 'name', 'video_first')"
        )
    unknown = sorted(set(data) - {"user", "system", "name", "video_first"})
    if unknown:
        raise ValueError(
            f"{path}: unknown field(s) {unknown}; a prompt file has 'user', 'system', 'name' and 'video_first'"
        )
    video_first = data.get("video_first", True)
    if not isinstance(video_first, bool):
        raise ValueError(f"{path}: field 'video_first' must be true or false, got {video_first!r}")
    system = data.get("system") or ""
    if not isinstance(system, str):
        raise ValueError(f"{path}: field 'system' must be a string")
    try:
        return PromptTemplate(
            name=str(data.get("name") or path.stem), system=system, user=data["user"], video_first=video_first
        )
    except ValueError as exc:  # an unknown {placeholder}, or no {question}
        raise ValueError(f"{path}: {exc}") from exc
