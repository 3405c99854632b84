"""Running many placements' migrations at once, in at most ``jobs`` worker processes.

Alembic's ``op`` and ``context`` are process-global, so migrations run in worker processes
(:mod:`tenantry.migrations.worker`), each serving one placement at a time over a pipe and
holding one connection at a time: a run opens at most ``jobs`` connections to placements,
whatever their number. The workers are plain subprocesses, not ``multiprocessing``: nothing
forks a process that has threads, and nothing imports the caller's ``__main__`` again (which
would rerun an unguarded script in every worker).

The workers run in a session of their own, so a Ctrl-C reaches only this process: it stops
handing out work and waits for the placements in flight (each commits or rolls back whole);
a second Ctrl-C kills the workers, whose transactions the server then rolls back.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

from tenantry.migrations.runner import Outcome, Work, first_line

__all__ = ["run_all"]


class _Worker:
    """One worker process, started on first use and again if it dies."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        env = dict(os.environ)
        # the worker imports what this process can (the app's modules, for its migrations)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        return subprocess.Popen(
            [sys.executable, "-m", "tenantry.migrations.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
            start_new_session=True,
        )

    def run(self, work: Work) -> Outcome:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(work.to_dict()) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except OSError:
            line = ""
        if not line:
            return Outcome(work.key, False, error=f"the worker process exited with code {self.close()}")
        return Outcome.from_dict(json.loads(line))

    def close(self) -> int | None:
        """End the worker (it exits at the end of its input); its exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        for pipe in (proc.stdin, proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:  # a dead worker's pipe
                pass
        return proc.wait()

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()


def _serve(
    worker: _Worker, todo: queue.SimpleQueue[Work], done: queue.SimpleQueue[tuple[Work, Outcome]], stop: threading.Event
) -> None:
    try:
        while not stop.is_set():
            try:
                work = todo.get_nowait()
            except queue.Empty:
                return
            try:
                outcome = worker.run(work)
            except Exception as err:  # starting the worker failed
                outcome = Outcome(work.key, False, error=f"cannot run a worker process: {first_line(err)}")
            done.put((work, outcome))
    finally:
        worker.close()


def run_all(works: Sequence[Work], *, jobs: int, on_outcome: Callable[[Work, Outcome], None]) -> None:
    """Run every piece of work, ``jobs`` at a time; call ``on_outcome`` in the calling thread
    as each one finishes (in completion order). A worker that dies fails its work only."""
    if not works:
        return
    todo: queue.SimpleQueue[Work] = queue.SimpleQueue()
    for work in works:
        todo.put(work)
    done: queue.SimpleQueue[tuple[Work, Outcome]] = queue.SimpleQueue()
    stop = threading.Event()
    workers = [_Worker() for _ in range(min(jobs, len(works)))]
    threads = [
        threading.Thread(target=_serve, args=(w, todo, done, stop), name=f"tenantry-migrate-{i}", daemon=True)
        for i, w in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for _ in works:
            on_outcome(*done.get())
    finally:
        stop.set()
        try:
            for thread in threads:
                thread.join()
        except KeyboardInterrupt:
            for worker in workers:
                worker.kill()
            raise
