"""Analysis: provenance -> tables. Everything here reads from the AiiDA graph only."""
