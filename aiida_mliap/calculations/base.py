"""Base CalcJob: the exit-code band rule, in one place for every CalcJob of the plugin."""

from __future__ import annotations

from aiida.engine import CalcJob, CalcJobProcessSpec


class MliapBaseCalculation(CalcJob):
    """Exit codes below 400 (input, missing or unreadable output) invalidate the cache; 4xx are physics or
    model outcomes, which are genuine results of the inputs and may be reused, except those caused by the machine
    the job ran on (``environment``: model files, memory, device), which another machine may not repeat."""

    @staticmethod
    def add_exit_code(
        spec: CalcJobProcessSpec, status: int, label: str, message: str, environment: bool = False
    ) -> None:
        spec.exit_code(status, label, message=message, invalidates_cache=status < 400 or environment)
