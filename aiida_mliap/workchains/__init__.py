"""Work chains of aiida-mliap: the restartable base work chain and the benchmark work chain (issue 5)."""
