"""HTML report of one or more evaluations (``ravst report``): the paper's Table 2/3 layout side by
side, breakdown plots, dataset statistics (Figure 3 style) and frames with ground-truth and
predicted boxes (Figure 5 style). See docs/report.md."""
