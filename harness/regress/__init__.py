"""Regression tracking over commits with asv (``harness regress``)."""
