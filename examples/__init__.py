"""Example workflows that are not part of the default deployment (see docs/writing-workflows.md)."""
