"""Scoring predictions: metrics (:mod:`.metrics`), bootstrap confidence intervals
(:mod:`.bootstrap`) and their plots (:mod:`.plots`). The public names are in ``dermlearn``'s
namespace."""
