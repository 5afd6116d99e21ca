"""The tiny guest: a component in WebAssembly text that makes one host call
COUNT times and returns, so that a host's cost per call is (t(COUNT) - t(0))
/ COUNT with nothing else in the loop.

It imports only standard WASI 0.2 and exports `wasi:cli/run`, so the very
same component also runs under `wasmtime run` (stdin from /dev/zero for
`read-64k`). The loop count is part of the
text (a component has no cheap way to read a number), hence one component
per count.
"""

from __future__ import annotations

from pathlib import Path

import wasmtime

#: What the guest does before its loop and in each iteration, by operation.
OPERATIONS = {
    # monotonic-clock.now: no arguments, a u64 back.
    "now": ("", "(drop (call $now))"),
    # subscribe-duration returns an own<pollable>, dropped at once.
    "resource": ("", "(call $drop-pollable (call $subscribe-duration (i64.const 0)))"),
    # blocking-read of 64 KiB from stdin: a result<list<u8>, stream-error>,
    # which must be ok and exactly 64 KiB long, or the guest traps.
    "read-64k": (
        "(local.set $stdin (call $get-stdin))",
        """(call $blocking-read (local.get $stdin) (i64.const 65536) (i32.const 0))
          (if (i32.or (i32.load8_u (i32.const 0))
                      (i32.ne (i32.load (i32.const 8)) (i32.const 65536)))
            (then unreachable))"""),
}

#: The WASI version the guest imports and exports: the oldest 0.2, which
#: every 0.2.x host satisfies.
WASI = "0.2.0"

_TEMPLATE = """
(component
  (import "wasi:io/poll@{wasi}" (instance $poll
    (export "pollable" (type (sub resource)))))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@{wasi}" (instance $clock
    (alias outer 1 $pollable (type $outer-pollable))
    (export "pollable" (type $pollable (eq $outer-pollable)))
    (export "now" (func (result u64)))
    (export "subscribe-duration" (func (param "when" u64) (result (own $pollable))))))
  (import "wasi:io/error@{wasi}" (instance $error-instance
    (export "error" (type (sub resource)))))
  (alias export $error-instance "error" (type $error))
  (import "wasi:io/streams@{wasi}" (instance $streams
    (alias outer 1 $error (type $outer-error))
    (export "error" (type $error (eq $outer-error)))
    (export "input-stream" (type $input-stream (sub resource)))
    (type $stream-error (variant (case "last-operation-failed" (own $error)) (case "closed")))
    (export "stream-error" (type $exported-stream-error (eq $stream-error)))
    (export "[method]input-stream.blocking-read"
      (func (param "self" (borrow $input-stream)) (param "len" u64)
            (result (result (list u8) (error $exported-stream-error)))))))
  (alias export $streams "input-stream" (type $input-stream))
  (import "wasi:cli/stdin@{wasi}" (instance $stdin
    (alias outer 1 $input-stream (type $outer-input-stream))
    (export "input-stream" (type $input-stream (eq $outer-input-stream)))
    (export "get-stdin" (func (result (own $input-stream))))))

  (core module $memory-module
    (memory (export "memory") 40)
    ;; Every list the host returns lands at the same address: the guest only
    ;; asks for them, so nothing needs to live longer than one call.
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 65536)))
  (core instance $memory (instantiate $memory-module))

  (core func $now (canon lower (func $clock "now")))
  (core func $subscribe-duration (canon lower (func $clock "subscribe-duration")))
  (core func $drop-pollable (canon resource.drop $pollable))
  (core func $get-stdin (canon lower (func $stdin "get-stdin")))
  (core func $blocking-read (canon lower (func $streams "[method]input-stream.blocking-read")
    (memory $memory "memory") (realloc (func $memory "realloc"))))

  (core module $loop-module
    (import "host" "now" (func $now (result i64)))
    (import "host" "subscribe-duration" (func $subscribe-duration (param i64) (result i32)))
    (import "host" "drop-pollable" (func $drop-pollable (param i32)))
    (import "host" "get-stdin" (func $get-stdin (result i32)))
    (import "host" "blocking-read" (func $blocking-read (param i32 i64 i32)))
    (import "memory" "memory" (memory 1))
    (func (export "run") (result i32)
      (local $done i32)
      (local $stdin i32)
      {setup}
      (block $end
        (loop $next
          (br_if $end (i32.eq (local.get $done) (i32.const {count})))
          {body}
          (local.set $done (i32.add (local.get $done) (i32.const 1)))
          (br $next)))
      (i32.const 0)))
  (core instance $loop (instantiate $loop-module
    (with "memory" (instance $memory))
    (with "host" (instance
      (export "now" (func $now))
      (export "subscribe-duration" (func $subscribe-duration))
      (export "drop-pollable" (func $drop-pollable))
      (export "get-stdin" (func $get-stdin))
      (export "blocking-read" (func $blocking-read))))))

  (func $run (result (result)) (canon lift (core func $loop "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@{wasi}" (instance $run-instance)))
"""


def component_bytes(operation: str, count: int) -> bytes:
    """The binary component that does `operation` `count` times."""
    setup, body = OPERATIONS[operation]
    text = _TEMPLATE.format(wasi=WASI, count=count, setup=setup, body=body)
    return wasmtime.wat2wasm(text)


def component_file(directory: Path, operation: str, count: int) -> Path:
    """`component_bytes` written to `directory` (for `wasmtime run`), once."""
    path = directory / f"tiny-{operation}-{count}.wasm"
    if not path.exists():
        path.write_bytes(component_bytes(operation, count))
    return path
