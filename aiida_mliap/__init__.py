"""aiida-mliap: benchmark machine-learning interatomic potentials against DFT with AiiDA provenance."""

__version__ = '0.1.0'
