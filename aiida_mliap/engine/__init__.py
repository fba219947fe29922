"""The runner executed on the compute node.

Nothing in this package may import aiida: it is installed alone in a framework's Python environment.
"""
