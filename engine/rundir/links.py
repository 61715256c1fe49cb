"""Symbolic links in a run directory: a run directory may come from someone else, and it must not be
able to make sgl write anywhere but inside it.

Files a run appends to or locks are opened without following a link (``O_NOFOLLOW``); files it
replaces are renamed over, which replaces a link rather than its target; and a directory that
holds links where its files or folders belong is refused when it is opened, saying which.
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
            raise RunDirError(refusal(path.parent, [path.name])) from None
        raise
    text = mode in ("a", "rw")
    return os.fdopen(fd, {"a": "a", "r+b": "r+b", "rw": "r+"}[mode], **({"encoding": "utf-8"} if text else {}))


def is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def links_in(root: Path, names: Iterable[str], folders: Iterable[str]) -> list[str]:
    """The links (relative paths) among a run directory's own files: ``names`` at its top, the
    ``folders`` themselves and anything inside them (not following links)."""
    found = [name for name in (*names, *folders) if is_link(root / name)]
    for folder in folders:
        if (root / folder).is_dir() and not is_link(root / folder):
            for parent, dirs, files in os.walk(root / folder):
                for name in (*dirs, *files):
                    if is_link(Path(parent) / name):
                        found.append((Path(parent) / name).relative_to(root).as_posix())
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
            raise RunDirError(refusal(root, [here.relative_to(root).as_posix()]))


def refusal(root: Path, links: list[str]) -> str:
    shown = ", ".join(links[:5]) + (f" and {len(links) - 5} more" if len(links) > 5 else "")
    return (f"{str(root)!r} holds symbolic links where its own files belong ({shown}); sgl never reads or writes a "
            "run's files through a link, so that a run directory cannot lead outside itself: replace each link by "
            "the file it points to (e.g. copy the run with `cp -rL`)")
