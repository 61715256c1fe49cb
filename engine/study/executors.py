"""Which executor runs a study's trials: ``local`` (processes here) or ``ray`` (Ray tasks on a cluster)."""

from __future__ import annotations

from ..errors import StudyError


def make_executor(name: str, address: str | None = None):
    if name == "local":
        if address:
            raise StudyError(f"--address {address} is for the ray executor; the local executor runs trials here")
        from .local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from .on_ray import RayExecutor

        return RayExecutor(address)
    raise StudyError(f"unknown executor {name!r}: local or ray")
