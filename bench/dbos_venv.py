"""DBOS 3.4 in a virtualenv of its own under ``bench/`` (git-ignored), built on demand.

DBOS is what Stepwise is measured against, never something it depends on, so
it is installed with pip into ``bench/.dbos-venv`` by the benchmark itself and
stays out of ``pyproject.toml``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".dbos-venv"
REQUIREMENT = "dbos==3.4.*"
STAMP = VENV / ".stepwise-bench-installed"


def python() -> Path:
    return VENV / "bin" / "python"


def ensure(timeout: float) -> Path:
    """The venv's interpreter, building the venv first if needed (``timeout`` seconds at most).

    Raises ``RuntimeError`` saying why when it cannot be built in time.
    """
    if STAMP.exists() and STAMP.read_text().strip() == REQUIREMENT and python().exists():
        return python()
    try:
        if not python().exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=timeout)
        subprocess.run(
            [str(python()), "-m", "pip", "install", "--quiet", REQUIREMENT],
            check=True,
            timeout=timeout,
            capture_output=True,
            text=True,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"building {VENV} took longer than {timeout:g} s") from None
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or "")[-500:] if isinstance(exc.stderr, str) else ""
        raise RuntimeError(f"could not build {VENV} ({REQUIREMENT}): {tail}") from None
    STAMP.write_text(REQUIREMENT + "\n")
    return python()
