"""Cooperative tasks: many things waiting at once, one `poll` for all of them.

A task is a generator. Where it has to wait, it yields what it waits for:
anything with ``subscribe()`` (a stream, a socket, a future) or a pollable.
A `Runner` puts every waiting task's pollable into one ``poll`` call and
resumes the tasks whose pollable is ready; a task ends when its generator
returns. Functions named ``*_task`` in this library are such generators
(combine them with ``yield from``); their plain namesakes run one to
completion, so blocking-style code and a server juggling a hundred
connections share the same steps.

    runner = tasks.Runner()
    runner.spawn(accept_loop_task(listener, runner))
    runner.run()
"""

from wit_world.imports import poll

from . import close


class Task:
    """One generator under a Runner; ``result`` is its return value once ``done``."""

    def __init__(self, steps, on_error):
        self.steps = steps
        self.on_error = on_error
        self.done = False
        self.result = None


class Runner:
    def __init__(self):
        self._runnable = []
        self._waiting = []  # (task, pollable, whether the runner made the pollable)
        self._stopping = False

    def spawn(self, steps, on_error=None):
        """Add a task. An exception ends the whole run, unless ``on_error``
        takes it (a server's one failed connection, say)."""
        task = Task(steps, on_error)
        self._runnable.append(task)
        return task

    def run(self):
        """Run until every task has ended, or `stop` was called."""
        self._stopping = False
        while (self._runnable or self._waiting) and not self._stopping:
            while self._runnable and not self._stopping:
                self._step(self._runnable.pop(0))
            if self._waiting and not self._stopping:
                self._wait()
        if self._stopping:
            self._cancel_all()

    def stop(self):
        """End the run after the current step: the other tasks are closed
        (their ``finally`` blocks run) and their pollables dropped."""
        self._stopping = True

    def _cancel_all(self):
        for task, pollable, made_here in self._waiting:
            if made_here:
                close(pollable)
            task.steps.close()
        for task in self._runnable:
            task.steps.close()
        self._waiting, self._runnable = [], []

    def _step(self, task):
        try:
            source = task.steps.send(None)
        except StopIteration as stop:
            task.done, task.result = True, stop.value
            return
        except Exception as error:
            task.done = True
            if task.on_error is None:
                raise
            task.on_error(error)
            return
        if isinstance(source, poll.Pollable):
            self._waiting.append((task, source, False))
        else:
            self._waiting.append((task, source.subscribe(), True))

    def _wait(self):
        ready = set(poll.poll([pollable for _, pollable, _ in self._waiting]))
        waiting = []
        for index, (task, pollable, made_here) in enumerate(self._waiting):
            if index in ready:
                if made_here:
                    close(pollable)
                self._runnable.append(task)
            else:
                waiting.append((task, pollable, made_here))
        self._waiting = waiting


def run(steps):
    """Run one task to completion and return its result."""
    runner = Runner()
    task = runner.spawn(steps)
    runner.run()
    return task.result


__all__ = ["Runner", "Task", "run"]
