"""CalcJobs and calcfunctions of aiida-mliap."""
