"""Side effects of the bundled workflows, each behind a small interface.

Every provider has a console default so the system runs with no accounts;
configuration picks the real one.
"""
