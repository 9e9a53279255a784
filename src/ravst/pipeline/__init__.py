"""Dataset construction (the paper's Figure 2): filter -> analyze -> annotate -> qa -> split -> stats.

Each stage is a function in :mod:`ravst.pipeline.stages` over a
:class:`~ravst.pipeline.config.PipelineConfig`, run resumably by :mod:`ravst.pipeline.runner`;
``ravst build STAGE`` (:mod:`ravst.pipeline.cli`) is the command line. See docs/pipeline.md.
"""
