"""Both command lines: Ctrl-C prints one line and exits 130; a reader closing the pipe early
(``... | head``) ends the command quietly (141); text the terminal cannot encode is escaped.
Worker pools never outlive the command."""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any


def guarded(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a command line's ``main`` (see the module docstring)."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        def run(argv: list[str] | None = None) -> int:
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, io.TextIOWrapper):
                    stream.reconfigure(errors="backslashreplace")
            try:
                status = main(argv)
                sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
                return status
            except KeyboardInterrupt as e:
                print(f"{prog}: interrupted{f'; {e}' if str(e) else ''}", file=sys.stderr)
                return 130
            except BrokenPipeError:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 141

        return run

    return wrap


@contextmanager
def worker_pool(workers: int, context: Any) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers ignore Ctrl-C and each lead a process group; if the caller
    leaves early (Ctrl-C, the time limit, an error) every group is killed: no worker, nor any
    process a worker started, finishes a task nobody waits for."""
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start)
    try:
        yield pool
    except BaseException:
        for pid in list(getattr(pool, "_processes", None) or ()):  # no public API before 3.14
            for kill in (os.killpg, os.kill):  # os.kill: the worker may not lead a group yet
                with suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _worker_start() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.setpgrp()
