"""Versioned prompt templates (YAML files named by version); read through sdfb.prompts."""
