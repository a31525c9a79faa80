"""The report folder ``--out``: runs written under a temporary name and
renamed into place, ``latest`` moved atomically, and what a killed writer
left removed by the next one."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path


def point_latest(out: Path, run_dir: Path) -> None:
    """Atomically make ``out/latest`` a symlink to ``run_dir``."""
    tmp = out / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(tmp, out / "latest")


def write_json(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


_LEFTOVER = re.compile(r"^\.(?:.+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp|latest-(?P<lpid>\d+))$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def clear_leftovers(out: Path, progress: Callable[[str], None]) -> None:
    """Remove what a killed writer left in ``out``: its temporary report
    folders and files, and its half-made ``latest`` link (only those of
    processes no longer running; a live writer's are its own)."""
    gone = 0
    for path in out.iterdir():
        m = _LEFTOVER.match(path.name)
        if not m or _alive(int(m.group("pid") or m.group("lpid"))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        gone += 1
    if gone:
        progress(f"removed {gone} temporary report folder(s) or file(s) a stopped run left")


def move_into_place(work: Path, run_dir: Path) -> None:
    """Rename the finished folder to ``run_dir``. A complete folder of the
    same run written meanwhile (two writers of one run) is kept; a folder
    without run.json (left by an older, killed writer) is set aside."""
    try:
        os.rename(work, run_dir)
        return
    except OSError:
        if not run_dir.exists():
            raise
    if (run_dir / "run.json").is_file():
        shutil.rmtree(work, ignore_errors=True)
        return
    os.rename(run_dir, run_dir.with_name(f".{run_dir.name}.incomplete-{secrets.token_hex(3)}"))
    os.rename(work, run_dir)
