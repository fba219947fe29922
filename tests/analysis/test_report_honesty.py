"""Issue 29: the report's figures and words never overstate thin data. One 100-atom cell in the ">100 DOF" bin is not
a trend, one 3.5 eV/atom collapse must not squeeze every parity plot, a rolling MAE that stops says why, and an
interval wider than the data is flagged rather than read as "no effect"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiida_mliap.analysis import plots
from aiida_mliap.analysis.report import UNINFORMATIVE, science_sections, symmetry_words
from aiida_mliap.science.claims import science

from .test_claims import dof_independent, synthetic


def one_big_cell(table: pd.DataFrame, error: float = -0.5) -> pd.DataFrame:
    """The issue's case: the table plus ONE structure with 300 DOF and a large negative error."""
    big = table.iloc[[0]].copy()
    big['mp_id'], big['dof'], big['chemsys'] = 'mp-big', 300.0, 'Fe'
    for column in ('e_above_hull_model', 'e_form_model', 'energy_per_atom_model'):
        big[column] = big[column] + error
    big['e_above_hull_model_dftref'] = big['e_above_hull_model_dftref'] + error
    return pd.concat([table, big], ignore_index=True)


def with_errors(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(
        error_e_above_hull=table['e_above_hull_model'] - table['e_above_hull_dft'],
        error_energy=table['energy_per_atom_model'] - table['energy_per_atom_dft'],
    )


def test_dof_figure_gives_n_per_bin_and_keeps_a_lone_structure_off_the_line():
    table = with_errors(one_big_cell(synthetic(lambda ehull, dof: 0.0 * dof, dof_independent)))
    plt = plots._pyplot()
    figure = plots.error_vs_dof(table, plt)
    for axis in figure.axes:
        texts = [text.get_text() for text in axis.texts]
        assert all(text.startswith('n=') for text in texts)
        (lone,) = [text for text in texts if text.startswith('n=1:')]  # beyond the scale: at the edge, value written
        assert float(lone.split(':')[1]) < axis.get_ylim()[0]  # the scale is set by the well-filled bins, not by it
        line = axis.lines[0]  # the errorbar's line: bins with at least MIN_PER_BIN structures only
        assert np.max(line.get_xdata()) < 5 - 0.2  # the '>100' bin (position 5) is not on it
        hollow = [c for c in axis.collections if c.get_offsets().shape[0] == 1 and c.get_label().startswith('n <')]
        assert len(hollow) == 1 and hollow[0].get_offsets()[0][0] > 4.5  # drawn apart, grey and hollow, one legend
    plt.close(figure)


def test_parity_axes_hold_the_bulk_and_count_the_outlier():
    table = with_errors(one_big_cell(synthetic(lambda ehull, dof: 0.0 * dof, dof_independent), error=-3.5))
    plt = plots._pyplot()
    figure = plots.parity(table, plt)
    ehull, total = figure.axes[0], figure.axes[3]  # Ehull spreads over ~0.3 eV/atom: the collapse is far outside
    assert ehull.get_ylim()[0] > table['e_above_hull_model'].min() + 2.0
    assert ehull.get_title().endswith('; 1 of 751 at the edge')
    # Total energies spread over eV/atom (many chemistries): the same point is no outlier there, nothing is clipped.
    assert 'at the edge' not in total.get_title() and total.get_ylim()[0] <= table['energy_per_atom_model'].min()
    plt.close(figure)


def test_rolling_mae_says_where_it_stops():
    table = with_errors(synthetic(lambda ehull, dof: -0.3 * ehull, dof_independent))
    plt = plots._pyplot()
    figure = plots.hull_distance(table, plt)
    (note,) = [text.get_text() for text in figure.axes[0].texts]
    assert 'drawn where a window holds >= 5 structures (up to m / static: ' in note and 'not shown' in note
    plt.close(figure)


def test_interval_wider_than_the_data_is_flagged_not_read_as_no_effect():
    """DOF constant within each of six chemical systems, each system with its own large offset: the bootstrap over
    systems gives a controlled DOF interval that admits effects larger than every observed error, and the words say
    'cannot tell', not 'no DOF effect'."""
    table = synthetic(lambda ehull, dof: 0.0 * dof, lambda ehull, generator: np.zeros(len(ehull)), n_chemsys=6)
    codes, names = pd.factorize(table['chemsys'], sort=True)
    table['dof'] = 10.0 * codes
    offset = np.random.default_rng(3).normal(0, 0.3, len(names))[codes]
    for column in ('e_above_hull_model', 'e_form_model', 'energy_per_atom_model', 'e_above_hull_model_dftref'):
        table[column] = table[column] + offset
    document = science(table)
    (dof,) = document['dof_effect']
    assert 'coef_dof' in dof['uninformative'], dof
    (verdict,) = document['verdicts']
    assert 'uninformative' in verdict['claim_3_high_dof'] and 'no DOF effect' not in verdict['claim_3_high_dof']
    # A well-sampled DOF range gives informative intervals.
    (sampled,) = science(synthetic(lambda ehull, dof: -0.0015 * dof, dof_independent))['dof_effect']
    assert sampled['uninformative'] == []
    text = ''.join(science_sections(document))
    assert f'{UNINFORMATIVE}' in text and 'wider than the data' in text
    words = symmetry_words(document)  # the verdict in words, placed right above the DOF figure
    assert words.startswith('<h3>Does symmetry') and 'uninformative' in words


def test_element_table_gives_n_and_greys_thin_elements():
    table = with_errors(one_big_cell(synthetic(lambda ehull, dof: 0.0 * dof, dof_independent)))
    table['chemsys'] = table['chemsys'].str.replace('A1', 'Li').str.replace(r'A\d+', 'Na', regex=True)
    plt = plots._pyplot()
    figure = plots.element_errors(table, plt)
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert 'n=1' in texts  # Fe: the one big cell
    fe = [patch for patch in figure.axes[0].patches if patch.get_xy() == (8 - 0.47, 4 - 0.47)]
    assert fe and fe[0].get_facecolor()[:3] == pytest.approx((0xDD / 255,) * 3)  # greyed, not coloured as a mean
    plt.close(figure)
