"""Analysis: provenance -> tables. Everything here reads from the AiiDA graph only.

``from aiida_mliap.analysis import load_results`` is the public entry point (one row per structure, model and task).
"""

from .results import COLUMNS, load_results

__all__ = ('COLUMNS', 'load_results')
