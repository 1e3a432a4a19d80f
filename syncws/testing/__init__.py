"""Helpers for testing programs that use syncws."""
