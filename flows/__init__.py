"""Prefect flows: the order of stages, loops over rounds. No logic."""
