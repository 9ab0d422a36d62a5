"""Helpers shared by the tests (one module per concern, plain names)."""
