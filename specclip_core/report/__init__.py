"""Plots, tables, the evaluation of heads stages and the paper tables."""
