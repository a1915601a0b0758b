"""Analyses and reports built on trained runs."""
