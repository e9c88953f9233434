"""Exported models: ``emoframe export`` (``run.export_task``) writes ONNX or TorchScript files with the
preprocessing described inside; ``runtime.load_exported`` reads them back (also ``emoframe.load_model``).

Import the submodules: ``emoframe.export.runtime`` needs neither Lightning nor the tasks, the writers do.
"""
