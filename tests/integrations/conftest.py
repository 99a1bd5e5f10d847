"""The provider fakes come from tests/support/fakes/fixtures.py (shared)."""
