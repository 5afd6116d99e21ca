;; The reproducer's guest: gets stdin and reads it in 64 KiB blocking-read
;; calls until the stream is closed, so every input byte crosses into the
;; guest as a list<u8> result. Standard WASI 0.2 only, so `wasmtime run` and
;; any host can run it unchanged.
(component
  (import "wasi:io/error@0.2.0" (instance $error-instance
    (export "error" (type (sub resource)))))
  (alias export $error-instance "error" (type $error))
  (import "wasi:io/streams@0.2.0" (instance $streams
    (alias outer 1 $error (type $error-outer))
    (export "error" (type $error-type (eq $error-outer)))
    (export "input-stream" (type $input-stream (sub resource)))
    (type $stream-error-def (variant (case "last-operation-failed" (own $error-type)) (case "closed")))
    (export "stream-error" (type $stream-error (eq $stream-error-def)))
    (export "[method]input-stream.blocking-read"
      (func (param "self" (borrow $input-stream)) (param "len" u64)
            (result (result (list u8) (error $stream-error)))))))
  (alias export $streams "input-stream" (type $input-stream))
  (import "wasi:cli/stdin@0.2.0" (instance $stdin
    (alias outer 1 $input-stream (type $input-stream-outer))
    (export "input-stream" (type $input-stream-type (eq $input-stream-outer)))
    (export "get-stdin" (func (result (own $input-stream-type))))))

  (core module $memory-module
    (memory (export "memory") 40)
    ;; Every list the host returns lands at the same address: the guest only
    ;; wants the bytes moved, so nothing needs to live longer than one call.
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 65536)))
  (core instance $memory (instantiate $memory-module))

  (core func $get-stdin (canon lower (func $stdin "get-stdin")))
  (core func $blocking-read (canon lower (func $streams "[method]input-stream.blocking-read")
    (memory $memory "memory") (realloc (func $memory "realloc"))))
  (core func $drop-input-stream (canon resource.drop $input-stream))

  (core module $main-module
    (import "env" "memory" (memory 1))
    (import "host" "get-stdin" (func $get-stdin (result i32)))
    (import "host" "blocking-read" (func $blocking-read (param i32 i64 i32)))
    (import "host" "drop-input-stream" (func $drop-input-stream (param i32)))
    (func (export "run") (result i32)
      (local $stdin i32)
      (local.set $stdin (call $get-stdin))
      (block $end
        (loop $next
          ;; result<list<u8>, stream-error> at offset 0: tag byte, then (ptr, len) at 4.
          (call $blocking-read (local.get $stdin) (i64.const 65536) (i32.const 0))
          (br_if $end (i32.load8_u (i32.const 0)))
          (br $next)))
      (call $drop-input-stream (local.get $stdin))
      (i32.const 0)))
  (core instance $main (instantiate $main-module
    (with "env" (instance $memory))
    (with "host" (instance
      (export "get-stdin" (func $get-stdin))
      (export "blocking-read" (func $blocking-read))
      (export "drop-input-stream" (func $drop-input-stream))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
