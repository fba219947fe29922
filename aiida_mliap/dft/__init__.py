"""The DFT check: Quantum ESPRESSO at the model's geometry and at the reference one (extra ``[dft]``).

Needs aiida-quantumespresso and aiida-pseudo (``pip install aiida-mliap[dft]``), imported only here and in
``workchains/dft_check.py``, so that the rest of the plugin works without them.
"""
