"""Put data/reviews.csv in place for a fresh clone: ``dvc pull`` from the configured remote, and when
that remote does not have it (a new machine, no credentials), regenerate it: the data is SYNTHETIC and
make_data.py is deterministic, so the same rows and seed give the very bytes that
data/reviews.csv.dvc records. The md5 is checked either way. Usage: python get_data.py"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import yaml

from make_data import generate

DATA = Path("data/reviews.csv")
ROWS, SEED = 1200, 42  # what data/reviews.csv.dvc was made with (and train.py's defaults)


def recorded_md5() -> str:
    return yaml.safe_load(Path(f"{DATA}.dvc").read_text(encoding="utf-8"))["outs"][0]["md5"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - DVC's content address, not security


def main() -> int:
    want = recorded_md5()
    pulled = subprocess.run([sys.executable, "-m", "dvc", "pull", f"{DATA}.dvc"], capture_output=True, text=True)
    if pulled.returncode != 0 or not DATA.is_file():
        errors = [line for line in (pulled.stderr + pulled.stdout).splitlines() if line.startswith("ERROR")]
        print(f"dvc pull did not bring {DATA} ({errors[0] if errors else f'exit {pulled.returncode}'}); generating it")
        generate(DATA, rows=ROWS, seed=SEED)
    got = md5(DATA)
    if got != want:
        print(f"{DATA}: md5 {got} differs from {want} recorded in {DATA}.dvc", file=sys.stderr)
        return 1
    print(f"{DATA}: md5 {got} matches {DATA}.dvc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
