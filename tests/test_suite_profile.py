"""The suite's own promise: under CI, hypothesis replays fixed examples (a good change is never
rejected by a new random one); elsewhere it explores."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def _profile(env_ci: str | None, profile: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    if env_ci is not None:
        env["CI"] = env_ci
    if profile is not None:
        env["HYPOTHESIS_PROFILE"] = profile
    code = ("import conftest; from hypothesis import settings; s = settings.default; "
            "print(s.derandomize, s.database is None, s.print_blob)")
    out = subprocess.run([sys.executable, "-c", code], cwd=TESTS, env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    return out.stdout.strip()


@pytest.mark.parametrize("ci, profile, expected", [
    ("true", None, "True True True"),      # .ci/run: derandomised, no example database
    (None, None, "False False True"),      # a developer's run explores
    (None, "ci", "True True True"),        # reproduce CI's examples locally
])
def test_ci_replays_fixed_examples(ci, profile, expected):
    assert _profile(ci, profile) == expected


def test_ci_script_selects_the_ci_profile():
    script = (TESTS.parent / ".ci" / "run").read_text()
    assert "CI=" in script and "make test" in script
