"""Hypothesis profiles for the property-based tests in this directory.

``ci`` (the default) is small and reproducible: a fixed seed (``derandomize``) and no example
database, so every run of the suite tries the same inputs. ``thorough`` (``HYPOTHESIS_PROFILE=
thorough``) is the dedicated run of issue 7: new random inputs each time, ≥ 10,000 cases across
the property tests. Each test scales its count from the profile's ``max_examples`` by what one
case costs (a routing call is cheap, an update through the whole bot is not).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    print_blob=True,
    # Long texts and whole rules files are slow to generate by design.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
