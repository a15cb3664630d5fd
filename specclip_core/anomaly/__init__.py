"""Anomaly scores of spectra under an align stage, ranked against its training set (``specclip anomalies``)."""
