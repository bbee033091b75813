"""The README's two commands, with nothing but Python 3.11 installed:

    python3 tasks.py run    # the service on embedded defaults (extra arguments go to main.py)
    python3 tasks.py test   # the whole test suite (extra arguments go to pytest)

Both create a virtual environment in .venv on first use and reuse it; it is reinstalled when
pyproject.toml changes. `python3 tasks.py demo` runs the offline demo.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".installed"


def ensure_venv() -> None:
    """Create .venv and install the project with its test extras, unless pyproject.toml is unchanged."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("tasks: creating .venv", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    print("tasks: installing newsbot and its test tools into .venv (first run takes a minute)", file=sys.stderr)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True, cwd=ROOT)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    commands = {
        "run": [str(PYTHON), "main.py", "run"],
        "demo": [str(PYTHON), "main.py", "demo"],
        "test": [str(PYTHON), "-m", "pytest"],
    }
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    ensure_venv()
    os.chdir(ROOT)
    command = [*commands[argv[0]], *argv[1:]]
    os.execv(command[0], command)  # the command takes this process over: Ctrl-C and SIGTERM reach it directly


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
