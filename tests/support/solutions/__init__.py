"""Trusted reference solutions (ours) and an in-process harness for task tests."""
