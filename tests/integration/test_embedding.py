"""The Python API: `Host.run` and `add_to_linker` in an embedder's own linker."""

import io

import wasmtime
from wasmtime import component as wc

from wasi_tls_host import ComponentCache, Host, HostConfig, WasiCtx, add_to_linker


def test_host_run_with_args_env_and_captured_stdio(guests):
    stdout = io.BytesIO()
    status = Host().run(str(guests["wasi-probe"]), args=["probe"], env={"PROBE_API": "yes"},
                        config=HostConfig(stdout=stdout, stderr=io.BytesIO()))
    assert status == 0
    out = stdout.getvalue().decode()
    assert "env: PROBE_API=yes" in out
    assert "probe: done failures=0" in out


def test_exit_status_through_the_api(guests):
    status = Host().run(str(guests["wasi-probe"]), args=["probe", "--exit", "1"],
                        config=HostConfig(stdout=io.BytesIO()))
    assert status == 1


def test_add_to_linker_next_to_the_embedders_own_functions(guests):
    engine = wasmtime.Engine()
    linker = wc.Linker(engine)
    stdout = io.BytesIO()
    ctx = WasiCtx(HostConfig(args=["probe"], stdout=stdout))
    add_to_linker(linker, ctx)
    calls = []
    with linker.root() as root, root.add_instance("example:embedder/log@1.0.0") as log:
        log.add_func("note", lambda store, text: calls.append(text))
    store = wasmtime.Store(engine)
    component = ComponentCache(engine, "default settings").load(str(guests["wasi-probe"]))
    instance = linker.instantiate(store, component)
    run_interface = next(name for name in component.type.exports(engine)
                         if name.startswith("wasi:cli/run@"))
    run = instance.get_func(store, instance.get_export_index(
        store, "run", instance.get_export_index(store, run_interface)))
    # The probe ends through wasi:cli/exit, which unwinds the call as a trap
    # and records the status on the context.
    try:
        run(store)
    except wasmtime.WasmtimeError:
        pass
    ctx.close()
    assert ctx.exit_code == 0
    assert "probe: done failures=0" in stdout.getvalue().decode()
