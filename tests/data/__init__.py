"""Generators of small test data sets in published layouts (nothing binary is committed)."""
