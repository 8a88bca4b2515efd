"""Argument normalization and integer shape arithmetic shared by layers, ops and the exporter."""
