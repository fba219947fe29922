"""Results of one MliapCalculation as a table, from one QueryBuilder query."""

from __future__ import annotations

import pandas as pd
from aiida import orm

from ..data.result import MliapResultData

COLUMNS = ['label', 'formula', 'n_atoms', 'status', 'converged', 'n_steps', 'energy_per_atom', 'forces_max']


def results_table(calculation: orm.CalcJobNode) -> pd.DataFrame:
    """One row per structure: the result attributes of every ``results__<label>`` output."""
    query = orm.QueryBuilder()
    query.append(orm.CalcJobNode, filters={'id': calculation.pk}, tag='calc')
    query.append(MliapResultData, with_incoming='calc', project=[f'attributes.{key}' for key in COLUMNS])
    frame = pd.DataFrame(query.all(), columns=COLUMNS)
    return frame.sort_values('label').reset_index(drop=True)
