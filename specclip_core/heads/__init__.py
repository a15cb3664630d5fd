"""Downstream heads (MLP, ridge), their metrics and stages."""
