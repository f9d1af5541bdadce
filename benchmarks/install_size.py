"""What each optional extra adds to an environment, measured from the installed distributions.

The size of an extra is the sum of the installed files of every distribution its requirements
pull in (transitively, with environment markers evaluated) that the base install does not
already pull in. Run alone it prints one line per extra.

    .venv/bin/python benchmarks/install_size.py
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _closure(requirements: list[str]) -> set[str]:
    """Names of the installed distributions ``requirements`` reach (missing ones are skipped)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        todo.extend(Requirement(r) for r in dist.requires or [])
    return seen


def _megabytes(names: set[str]) -> float:
    total = 0
    for name in names:
        for file in metadata.distribution(name).files or []:
            path = Path(file.locate())
            if path.is_file():
                total += path.stat().st_size
    return total / 2**20


def extra_sizes() -> dict[str, str]:
    """Extra name -> "N MB (K packages)" beyond the base install, for the installed extras."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    base = _closure(project["dependencies"])
    sizes = {}
    for extra, requirements in project["optional-dependencies"].items():
        if extra == "all":
            continue
        added = _closure(requirements) - base
        if added:
            sizes[extra] = f"{_megabytes(added):.0f} MB ({len(added)} distributions)"
    return sizes


if __name__ == "__main__":
    for extra, size in extra_sizes().items():
        print(f"{extra}: {size}")
