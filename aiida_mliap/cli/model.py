"""``aiida-mliap model``: what models are registered."""

import click
from aiida.cmdline.utils import decorators, echo

from . import cmd_root


@cmd_root.group('model')
def cmd_model():
    """Inspect registered models."""


@cmd_model.command('list')
@decorators.with_dbenv()
def model_list():
    """Registered models with framework, energy scale and sha256."""
    from aiida.orm import QueryBuilder
    from tabulate import tabulate

    from ..data.model import MliapModelData

    attributes = ['name', 'framework', 'framework_version', 'energy_scale', 'sha256']
    query = (
        QueryBuilder()
        .append(MliapModelData, project=['id', *(f'attributes.{key}' for key in attributes)])
        .order_by({MliapModelData: {'id': 'asc'}})
    )
    rows = query.all()
    if not rows:
        echo.echo_report('no models: register one with `aiida-mliap setup model chgnet-0.3.0`')
        return
    click.echo(tabulate(rows, headers=['pk', *attributes]))
