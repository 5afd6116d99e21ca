"""Cooperative tasks: many things waiting at once, one `poll` for all of them.

A task is a generator. Where it has to wait, it yields what it waits for:
anything with ``subscribe()`` (a stream, a socket, a future) or a pollable;
or `Until(source, deadline)`, the same but only until an instant from
`deadline_in`: once that passes first, `Timeout` is raised in the task where
it yielded. A bare ``yield`` waits for nothing: the task lets every other
ready task take a step first. A `Runner` puts every waiting task's
pollables into one ``poll`` call and resumes the tasks whose pollable is
ready; a task ends when its generator returns. Functions named ``*_task``
in this library are such generators (combine them with ``yield from``);
their plain namesakes run one to completion, so blocking-style code and a
server juggling a hundred connections share the same steps.

    runner = tasks.Runner()
    runner.spawn(accept_loop_task(listener, runner))
    runner.run()

Fairness: the runner gives every ready task one step before it polls again,
and the library's reading and writing tasks yield at least once per chunk,
so a connection whose data never stops cannot keep the others waiting.

Failure: an exception ends its own task only. The runner reports it on
stderr and the other tasks go on, unless the task was spawned with
``on_error`` (which takes the exception instead) or ``fatal=True`` (the
exception ends the run: `Runner.run` closes the other tasks and raises it).
"""

import sys
import traceback
from collections import deque

from wit_world.imports import monotonic_clock, poll

from . import close
from .errors import Timeout, WasiError

NS_PER_S = 1_000_000_000


def deadline_in(seconds):
    """The instant ``seconds`` from now on the monotonic clock, for `Until`."""
    return monotonic_clock.now() + int(seconds * NS_PER_S)


class Until:
    """What a task yields to wait for ``source`` until ``deadline`` (from
    `deadline_in`); past it, the runner raises `Timeout` with ``what`` in
    the task."""

    def __init__(self, source, deadline, what="waiting"):
        self.source = source
        self.deadline = deadline
        self.what = what


def sleep_task(seconds):
    """Task: wait ``seconds``, letting the other tasks run."""
    timer = monotonic_clock.subscribe_duration(int(seconds * NS_PER_S))
    try:
        yield timer
    finally:
        close(timer)


class Task:
    """One generator under a Runner; ``result`` is its return value once
    ``done``, ``error`` the exception that ended it, if one did."""

    def __init__(self, steps, on_error, fatal):
        self.steps = steps
        self.on_error = on_error
        self.fatal = fatal
        self.done = False
        self.result = None
        self.error = None


class _Waiting:
    """A task's pollables in the next poll; those it made are dropped once
    it resumes. ``timer`` is the index of an `Until`'s deadline."""

    def __init__(self, task, pollables, made, timer=None, what=None):
        self.task = task
        self.pollables = pollables
        self.made = made
        self.timer = timer
        self.what = what

    def drop(self):
        close(*(pollable for pollable, made in zip(self.pollables, self.made, strict=True) if made))


class Runner:
    def __init__(self):
        self._runnable = deque()  # (task, exception to raise in it, or None)
        self._waiting = []
        self._yielded = []
        self._stopping = False

    def spawn(self, steps, on_error=None, *, fatal=False):
        """Add a task. An exception ends only the task and is reported on
        stderr; ``on_error(exception)`` takes it instead (a server's log line
        for one failed connection, say); with ``fatal`` it ends the run."""
        task = Task(steps, on_error, fatal)
        self._runnable.append((task, None))
        return task

    def run(self):
        """Run until every task has ended, or `stop` was called, or a fatal
        task failed (its exception is raised here)."""
        self._stopping = False
        try:
            while self._busy():
                while self._runnable and not self._stopping:
                    self._step(*self._runnable.popleft())
                if self._busy():
                    self._wait()
        except BaseException:
            self._cancel_all()
            raise
        if self._stopping:
            self._cancel_all()

    def stop(self):
        """End the run after the current step: the other tasks are closed
        (their ``finally`` blocks run) and their pollables dropped."""
        self._stopping = True

    def _busy(self):
        return bool(self._runnable or self._waiting or self._yielded) and not self._stopping

    def _cancel_all(self):
        for waiting in self._waiting:
            waiting.drop()
            waiting.task.steps.close()
        for task, _ in self._runnable:
            task.steps.close()
        for task in self._yielded:
            task.steps.close()
        self._waiting, self._runnable, self._yielded = [], deque(), []

    def _step(self, task, error):
        try:
            source = task.steps.throw(error) if error is not None else task.steps.send(None)
        except StopIteration as stop:
            task.done, task.result = True, stop.value
            return
        except Exception as failure:
            task.done, task.error = True, failure
            if task.fatal:
                raise
            if task.on_error is not None:
                task.on_error(failure)
            else:
                _report(task, failure)
            return
        if source is None:
            self._yielded.append(task)
        else:
            self._waiting.append(_waiting(task, source))

    def _wait(self):
        """Poll once; ready tasks become runnable, then those that yielded.
        While some yielded, the poll must not block: a timer that is already
        due joins it."""
        yielded, self._yielded = self._yielded, []
        if not self._waiting:
            self._runnable.extend((task, None) for task in yielded)
            return
        due = monotonic_clock.subscribe_duration(0) if yielded else None
        pollables = [pollable for waiting in self._waiting for pollable in waiting.pollables]
        try:
            ready = set(poll.poll(pollables + ([due] if due is not None else [])))
        finally:
            close(due)
        still, start = [], 0
        for waiting in self._waiting:
            hits = [index - start for index in range(start, start + len(waiting.pollables))
                    if index in ready]
            start += len(waiting.pollables)
            if not hits:
                still.append(waiting)
                continue
            waiting.drop()
            timed_out = hits == [waiting.timer]
            self._runnable.append((waiting.task, Timeout(detail=waiting.what)
                                   if timed_out else None))
        self._waiting = still
        self._runnable.extend((task, None) for task in yielded)


def _waiting(task, source):
    """What ``task`` waits on for the ``source`` it yielded (an `Until`
    adds its deadline's timer)."""
    if isinstance(source, Until):
        pollable, made = _pollable(source.source)
        timer = monotonic_clock.subscribe_instant(source.deadline)
        return _Waiting(task, [pollable, timer], [made, True], 1, source.what)
    pollable, made = _pollable(source)
    return _Waiting(task, [pollable], [made])


def _pollable(source):
    """(pollable, whether it was made here) for what a task yielded."""
    if isinstance(source, poll.Pollable):
        return source, False
    return source.subscribe(), True


def _report(task, error):
    """A task's exception on stderr: one line for a WASI failure, the
    traceback for anything else (a bug, most likely)."""
    name = getattr(task.steps, "__name__", "task")
    if isinstance(error, WasiError):
        print(f"task {name} failed: {type(error).__name__}: {error}", file=sys.stderr,
              flush=True)
    else:
        print(f"task {name} failed:", file=sys.stderr)
        traceback.print_exception(error, file=sys.stderr)
        sys.stderr.flush()


def run(steps):
    """Run one task to completion and return its result (or raise its exception).

    One task needs no `Runner`: it waits on its one pollable with ``block``
    (an `Until`: ``poll`` on it and the deadline), which spares every
    blocking-style call of the library the runner's bookkeeping."""
    error = None
    try:
        while True:
            try:
                source = steps.throw(error) if error is not None else steps.send(None)
            except StopIteration as stop:
                return stop.value
            error = None
            if source is None:
                continue
            waiting = _waiting(None, source)
            try:
                if waiting.timer is None:
                    waiting.pollables[0].block()
                elif poll.poll(waiting.pollables) == [waiting.timer]:  # only the deadline
                    error = Timeout(detail=waiting.what)
            finally:
                waiting.drop()
    finally:
        steps.close()


__all__ = ["Runner", "Task", "Timeout", "Until", "deadline_in", "run", "sleep_task"]
