"""Micrograph datasets: ingest, preprocessing, on-disk format, synthetic micrographs."""
