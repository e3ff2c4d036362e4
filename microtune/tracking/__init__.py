"""Experiment tracking: key names (schema) and the one module that imports mlflow (mlflow_io)."""
