"""Scripts that regenerate the studies' figures and tables from MLflow (one script per figure)."""
