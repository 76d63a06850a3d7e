"""Tests of synth.filters (a package so its conftest does not shadow tests/conftest.py)."""
