"""Shared paths for the test suites."""
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SEED_SPECS = sorted((FIXTURES / "specs" / "seeds").glob("*.txt"))
BROKEN_SPECS = sorted((FIXTURES / "specs" / "broken").glob("*.txt"))


@pytest.fixture
def seed_spec():
    """Path of a seed spec by file name."""
    return lambda name: FIXTURES / "specs" / "seeds" / name
