"""Both command lines: Ctrl-C prints one line and exits 130, a closed pipe (``| head``) ends them
quietly (141), unencodable text is escaped; worker pools never outlive them."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any


def guarded(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Decorate a command line's ``main`` (see the module docstring)."""
    prog = Path(main.__code__.co_filename).parent.name  # checker, certify (also as __main__)

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


@contextmanager
def worker_pool(workers: int, context: Any) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers ignore Ctrl-C and lead process groups, all killed if the
    caller leaves early (Ctrl-C, the time limit, an error): nothing outlives the command."""
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start) as pool:
        try:
            yield pool
        except BaseException:
            threading.excepthook = _quiet_manager_thread
            # if that thread fails, nothing closes the call queue's pipe, and its feeder thread,
            # blocked on writing to dead workers, would hang the interpreter's exit
            with suppress(AttributeError):
                pool._call_queue.cancel_join_thread()  # type: ignore[attr-defined]
            for pid in list(getattr(pool, "_processes", None) or ()):  # no public API before 3.14
                for kill in (os.killpg, os.kill):  # os.kill: the worker may not lead a group yet
                    with suppress(ProcessLookupError, PermissionError):
                        kill(pid, signal.SIGKILL)
            raise


def _quiet_manager_thread(args: Any) -> None:
    """Once the workers are killed, the pool's manager thread may fail an already cancelled future
    (InvalidStateError, CPython < 3.12): the command is leaving anyway, so it stays quiet."""
    if type(args.thread).__name__ != "_ExecutorManagerThread":
        threading.__excepthook__(args)


def _worker_start() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.setpgrp()
