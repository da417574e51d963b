"""Execution environments in the lab: child processes that run handlers like Lambda."""
