"""ravst: audio-visual spatio-temporal reasoning with Video-LLMs (R-AVST, AVST-Zero)."""

__version__ = "0.1.0"
