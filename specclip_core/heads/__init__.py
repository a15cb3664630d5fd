"""Downstream heads (MLP, ridge), their inputs, saved layout and metrics."""
