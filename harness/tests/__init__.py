"""Tests of the harness itself, and its contracts run on the built-in stores.

(A package, so that its conftest is not a second top-level ``conftest``
module beside the core's tests/conftest.py, for mypy.)"""
