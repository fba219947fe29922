"""Names of the files exchanged between the CalcJob and the runner: one place, both sides import it."""

PARAMETERS = 'parameters.json'
STRUCTURES = 'structures.extxyz'
MODEL_DIR = 'model'
RESULTS = 'results.json'
RESULTS_PARTIAL = 'results.partial.jsonl'
FINAL_STRUCTURES = 'final_structures.extxyz'
LOG = 'runner.log'
