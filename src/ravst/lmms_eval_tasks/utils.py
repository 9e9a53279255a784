"""Entry points named by the task YAMLs (``!function utils.X``); the code is in ``glue``.

lmms-eval loads this file by path once per ``!function`` tag, so nothing here keeps state.
"""

from ravst.lmms_eval_tasks.glue import *  # noqa: F403
from ravst.lmms_eval_tasks.glue import __all__  # noqa: F401
