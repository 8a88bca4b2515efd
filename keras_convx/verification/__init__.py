"""Verification, one core for export and import: inputs at the model's scale, a Keras
runner, an onnxruntime runner, the judge with one rule (`rules`), and the report.

This package imports neither the exporter nor the importer: each is a client that hands
it what only it knows (the exporter, its tensor map and the model's flat graph).
"""
