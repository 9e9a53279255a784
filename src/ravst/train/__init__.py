"""AVST-Zero training: GRPO (``grpo``) and the SFT baseline (``sft``) on TRL, configs (``config``),
data (``data``), model inputs (``inputs``) and the ``ravst train`` command (``cli``)."""
