"""The pre-fork supervisor's handling of a replacement worker that cannot
start (http/workers.py), without forking: `spawn` is replaced."""

from __future__ import annotations

from wasi_tls_host.http import workers


def supervisor_whose_spawn_fails(stopping: bool) -> workers._Supervisor:
    supervisor = workers._Supervisor(start=lambda: None)  # type: ignore[arg-type, return-value]
    supervisor.workers = {101}  # the worker still serving
    supervisor.stopping = stopping

    def spawn() -> None:
        raise workers.StartupError("a worker ended while starting (exit status 1)")

    supervisor.spawn = spawn  # type: ignore[method-assign]
    return supervisor


def test_a_replacement_that_cannot_start_is_reported_and_the_others_go_on(capsys):
    supervisor = supervisor_whose_spawn_fails(stopping=False)
    supervisor._replace()
    supervisor.close()
    assert supervisor.failed
    assert supervisor.workers == {101}
    assert capsys.readouterr().err == (
        "wasi-tls-host: a replacement worker could not start (a worker ended while starting "
        "(exit status 1)); serving with 1\n")


def test_a_replacement_a_stop_ended_is_no_failure(capsys):
    supervisor = supervisor_whose_spawn_fails(stopping=True)
    supervisor._replace()
    supervisor.close()
    assert not supervisor.failed
    assert capsys.readouterr().err == ""
