"""Tools for developers, not part of the study's results: bench (training epochs timed)."""
