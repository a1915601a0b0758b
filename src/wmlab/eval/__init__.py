"""Evaluation: policies over context grids, expert/random normalisation, aggregate statistics."""
