"""Symbolic links in a run directory: a run directory may come from someone else, and it must not be
able to make sgl write anywhere but inside it (nor hang it, reading a FIFO for ever).

Files a run appends to or locks are opened without following a link (``O_NOFOLLOW``); files it
replaces are renamed over, which replaces a link rather than its target; and a directory that
holds links, FIFOs or devices where its files or folders belong is refused when it is opened,
saying which.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO, Iterable

from ..errors import RunDirError

_FLAGS = {
    "a": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
    "r+b": os.O_RDWR,
    "rw": os.O_RDWR | os.O_CREAT,
}


def open_no_follow(path: Path, mode: str) -> IO:
    """``path`` opened for appending (``a``), updating (``r+b``) or both, made if missing (``rw``),
    refusing a symbolic link in its place."""
    flags = _FLAGS[mode] | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunDirError(refusal(path.parent, [f"{path.name} (link)"])) from None
        raise
    text = mode in ("a", "rw")
    return os.fdopen(fd, {"a": "a", "r+b": "r+b", "rw": "r+"}[mode], **({"encoding": "utf-8"} if text else {}))


def is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def _kind(path: Path) -> str | None:
    """What is at ``path`` without following a link: file, folder, link, FIFO, socket or device
    (reading one can wait for ever, or never end), or None when nothing is."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return "file" if stat.S_ISREG(mode) else "folder"
    return "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"


def misplaced(root: Path, names: Iterable[str], folders: Iterable[str]) -> list[str]:
    """What stands where a run directory's own files belong but is no plain file or folder: links
    (and what they point to would be read or written), FIFOs and devices — among ``names`` at its
    top, the ``folders`` themselves and anything inside them (not following links)."""
    found = [f"{name} ({kind})" for name in names if (kind := _kind(root / name)) not in (None, "file")]
    for folder in folders:
        kind = _kind(root / folder)
        if kind not in (None, "folder"):
            found.append(f"{folder} ({kind})")
            continue
        if kind is None:
            continue
        for parent, dirs, files in os.walk(root / folder):
            for name in (*dirs, *files):
                kind = _kind(Path(parent) / name)
                if kind not in ("file", "folder"):
                    found.append(f"{(Path(parent) / name).relative_to(root).as_posix()} ({kind})")
    return sorted(found)


def check_inside(root: Path, path: Path) -> None:
    """Refuse to write ``path`` when a folder between ``root`` and it is a link (it would lead out)."""
    try:
        parts = path.parent.relative_to(root).parts
    except ValueError:
        return  # not a file of this run directory (an explicit output path the user chose)
    here = root
    for part in parts:
        here = here / part
        if is_link(here):
            raise RunDirError(refusal(root, [f"{here.relative_to(root).as_posix()} (link)"]))


def refusal(root: Path, found: list[str]) -> str:
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    return (f"{str(root)!r} holds symbolic links or special files where its own files belong ({shown}); sgl never "
            "reads or writes a run's files through a link, so that a run directory cannot lead outside itself: "
            "replace each by the plain file it stands for (e.g. copy the run with `cp -rL`)")
