"""Terminology: the code systems, value sets and concept maps of ``terminology/`` and their operations."""
