"""YAML protocols (fast, balanced, stringent) for the work chains (issue 5)."""
