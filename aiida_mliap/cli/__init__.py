"""The ``aiida-mliap`` command line interface, built on verdi's own command group."""

import click
from aiida.cmdline.groups import VerdiCommandGroup
from aiida.cmdline.params import options, types


@click.group('aiida-mliap', cls=VerdiCommandGroup, context_settings={'help_option_names': ['-h', '--help']})
@options.PROFILE(type=types.ProfileParamType(load_profile=True), expose_value=False)
def cmd_root():
    """Benchmark machine-learning interatomic potentials with AiiDA provenance."""


from . import benchmark, dataset, launch, model, report, setup  # noqa: E402, F401
