"""The study's experiments, runnable on public data (``python -m dermlearn.experiments.<name>``)."""
