"""Human quality control: a review web app for dual 1-4 scoring, kappa, and curated export.

``ravst.review.db`` (SQLite store), ``ravst.review.kappa`` (agreement), ``ravst.review.app``
(FastAPI app, imported lazily), ``ravst.review.cli`` (``ravst review ...``).
"""
