"""AiiDA data classes of aiida-mliap."""

from .dataset import MliapDatasetData
from .model import MliapModelData
from .reference import MliapReferenceData
from .result import MliapResultData
from .thermo import MliapThermoData

__all__ = ('MliapDatasetData', 'MliapModelData', 'MliapReferenceData', 'MliapResultData', 'MliapThermoData')
