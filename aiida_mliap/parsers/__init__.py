"""Parsers of aiida-mliap: pure reading helpers plus the AiiDA Parser classes."""
