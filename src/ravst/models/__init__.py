"""Video-LLM backends (transformers, vLLM, OpenAI-compatible) and weight-free baselines.

Every backend turns QA items + their video files into :class:`ravst.types.Prediction` records
through one narrow interface, :class:`ravst.models.base.Backend`.
"""
