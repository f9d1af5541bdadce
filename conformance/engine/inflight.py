"""The example a parity case is running, kept on disk while it runs.

A runtime that crashes in native code (a segfault) takes the test process with it, and with it
the example that did it. So before each example the case writes what it is about to run to
``REPORTS/inflight/<case>.txt`` and removes the file when the case ends. Under pytest-xdist the
controller, closing the case of a worker that died, reads the file into the record and the
failure message; after a serial run that died, the file is still there to read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

FOLDER = "inflight"


def path_for(reports: Path, nodeid: str) -> Path:
    return Path(reports) / FOLDER / f"{hashlib.sha1(nodeid.encode()).hexdigest()[:16]}.txt"


class Breadcrumb:
    """The in-flight file of one case: ``note`` before each example, ``clear`` at the end."""

    def __init__(self, reports: Path | None, nodeid: str):
        self.path = None if reports is None else path_for(reports, nodeid)
        self.nodeid = nodeid
        self._folder_made = False

    def note(self, text: str) -> None:
        if self.path is None:
            return
        try:
            if not self._folder_made:  # once per case: this runs before every example
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._folder_made = True
            self.path.write_text(f"{self.nodeid}\n{text}\n")
        except OSError:  # a diagnosis: a read-only reports folder must not fail the case
            self.path = None

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def take(reports: Path, nodeid: str) -> str | None:
    """What the case was running when its process ended (and the file gone), or None."""
    path = path_for(reports, nodeid)
    try:
        lines = path.read_text().splitlines()
        path.unlink()
    except OSError:
        return None
    return "\n".join(lines[1:]) if lines and lines[0] == nodeid else None
