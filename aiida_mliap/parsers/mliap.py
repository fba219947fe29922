"""Parser of ``MliapCalculation``: per structure a result node (and the relaxed structure), plus a summary."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from ..contract import files
from ..contract.parameters import with_defaults
from ..contract.schema import RESULT_KEYS
from ..contract.status import WITH_RESULT, Status
from ..data.result import MliapResultData
from .results import FATAL_EXIT_CODES, outcome, read_final_structures, read_partial_results, read_results, summarize


class MliapParser(Parser):
    """Reads only the retrieved folder; nothing a structure produced is dropped because another failed."""

    CACHE_VERSION = 2  # 2: a job without any results file is stopped early (304), not 301

    def parse(self, **kwargs) -> ExitCode | None:
        retrieved = self.retrieved
        names = retrieved.base.repository.list_object_names()
        complete = files.RESULTS in names
        try:
            if complete:
                content = read_results(retrieved.base.repository.get_object_content(files.RESULTS))
            elif files.RESULTS_PARTIAL in names:
                partial = retrieved.base.repository.get_object_content(files.RESULTS_PARTIAL)
                content = {'results': read_partial_results(partial)}
            else:
                # The runner stopped before it wrote anything (killed while loading, walltime, preemption): every
                # structure is `not_run`, as after a kill later on, so the base work chain resubmits them (304).
                content = {'results': []}
        except ValueError as exception:
            return self.exit_codes.ERROR_UNREADABLE_RESULTS.format(message=str(exception))

        fatal = content.get('fatal_error')
        if fatal:
            self.logger.error(f'runner refused to start: {fatal["message"]}')
            exit_code = getattr(self.exit_codes, FATAL_EXIT_CODES.get(fatal['kind'], 'ERROR_RUNNER_REFUSED_INPUT'))
            return exit_code.format(message=fatal['message'])

        unreadable = None
        try:
            final = read_final_structures(
                retrieved.base.repository.get_object_content(files.FINAL_STRUCTURES)
                if files.FINAL_STRUCTURES in names
                else ''
            )
        except Exception as exception:  # the results stand on their own: keep them, without final geometries
            final, unreadable = {}, str(exception)
            self.logger.error(f'the final structures could not be read, results kept without them: {exception}')

        inputs = self.node.inputs.structures
        expected = list(inputs.keys())
        parameters = self.node.inputs.parameters.get_dict() if 'parameters' in self.node.inputs else {}
        task = with_defaults(parameters)['task']
        records = [record for record in content['results'] if record.get('label') in inputs]
        for record in records:
            label = record['label']
            self.out(f'results.{label}', MliapResultData({key: record.get(key) for key in RESULT_KEYS}))
            if task == 'relax' and Status(record['status']) in WITH_RESULT and label in final:
                structure = orm.StructureData(ase=final[label])
                structure.label = inputs[label].label
                self.out(f'relaxed_structures.{label}', structure)
            if record.get('trajectory'):
                self.out(f'trajectories.{label}', trajectory_node(record['trajectory']))
            if record.get('forces') is not None:
                self.out(f'forces.{label}', forces_node(record['forces']))
            if record['status'] != Status.OK.value:
                self.logger.warning(f'{label}: {record["status"]}: {record.get("message", "")}')

        summary = summarize(records, expected)
        summary.update(
            complete=complete, environment=content.get('environment'), wall_time_s=content.get('wall_time_s')
        )
        self.out('summary', orm.Dict(summary))

        if unreadable is not None:
            os_error = self._os_error()
            if os_error:
                unreadable = f'{unreadable}; the job reported: {os_error}'
            return self.exit_codes.ERROR_UNREADABLE_STRUCTURES.format(message=unreadable)
        if not complete:
            missing = summary['counts'].get(Status.NOT_RUN.value, 0)
            self.logger.error(f'the runner stopped early; last scheduler error line: {self._last_error_line()}')
            return self.exit_codes.ERROR_INCOMPLETE_RESULTS.format(missing=missing)
        name = outcome(summary['counts'])
        if name:
            return getattr(self.exit_codes, name).format(counts=summary['counts'])
        return None

    def _stderr_lines(self) -> list[str] | None:
        """The non-empty lines of the retrieved scheduler stderr, None when it was not retrieved."""
        name = self.node.get_option('scheduler_stderr')
        if not name or name not in self.retrieved.base.repository.list_object_names():
            return None
        return [line for line in self.retrieved.base.repository.get_object_content(name).splitlines() if line.strip()]

    def _last_error_line(self) -> str:
        """The runner's last words (a traceback's final line) from the retrieved scheduler stderr, if any."""
        lines = self._stderr_lines()
        return '(none retrieved)' if lines is None else (lines[-1] if lines else '(empty)')

    def _os_error(self) -> str | None:
        """The last operating-system error the job printed (a full disk named as such), None if it printed none."""
        found = [line.strip() for line in self._stderr_lines() or [] if 'Errno' in line or 'OSError' in line]
        if not found:
            return None
        full = any('Errno 28' in line or 'No space left on device' in line for line in found)
        return f'disk full ({found[-1]})' if full else found[-1]


def forces_node(forces: list[list[float]]) -> orm.ArrayData:
    """One structure's forces (eV/Å, atoms in the input's order) as the array ``forces``."""
    import numpy as np

    node = orm.ArrayData()
    node.set_array('forces', np.asarray(forces, dtype=float))
    return node


def trajectory_node(steps: dict[str, list]) -> orm.ArrayData:
    """The runner's per-step record as arrays (one node per structure; a missing volume, for a molecule, is NaN)."""
    import numpy as np

    node = orm.ArrayData()
    for name, values in steps.items():
        node.set_array(name, np.array([np.nan if v is None else v for v in values], dtype=float)
                       if name == 'volume' else np.asarray(values, dtype=float))  # fmt: skip
    return node
