"""AiiDA data classes of aiida-mliap."""

from .model import MliapModelData
from .result import MliapResultData

__all__ = ('MliapModelData', 'MliapResultData')
