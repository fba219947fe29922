"""Per-structure outcome of a run: one vocabulary for the runner, the parser and the work chains."""

from enum import Enum


class Status(str, Enum):
    OK = 'ok'
    UNCONVERGED = 'unconverged'
    UNSUPPORTED_ELEMENT = 'unsupported_element'
    INVALID_STRUCTURE = 'invalid_structure'
    MODEL_REFUSED = 'model_refused'
    EXPLODED = 'exploded'
    OUT_OF_MEMORY = 'out_of_memory'
    ERROR = 'error'
    NOT_RUN = 'not_run'

    def __str__(self) -> str:
        return self.value


# Failures that another attempt with the same model cannot fix.
PERMANENT_FAILURES = frozenset(
    {Status.UNSUPPORTED_ELEMENT, Status.INVALID_STRUCTURE, Status.MODEL_REFUSED, Status.EXPLODED, Status.ERROR}
)
# Outcomes that carry a usable final structure and energy.
WITH_RESULT = frozenset({Status.OK, Status.UNCONVERGED})
