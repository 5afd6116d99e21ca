;; A guest for the other forms: the same 64 KiB reads of stdin, but through
;; one imported function that returns the bytes as a string (`read-text`)
;; or as a list<u64> (`read-words`), until it returns none. It exports one
;; function per form instead of wasi:cli/run, so only host.c runs it.
(component
  (import "wall:bench/bytes@0.1.0" (instance $bytes
    (export "read-text" (func (param "len" u64) (result (option string))))
    (export "read-words" (func (param "len" u64) (result (option (list u64)))))))

  (core module $memory-module
    (memory (export "memory") 40)
    ;; As in guest.wat: every result lands at the same address.
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 65536)))
  (core instance $memory (instantiate $memory-module))

  (core func $read-text (canon lower (func $bytes "read-text")
    (memory $memory "memory") (realloc (func $memory "realloc"))))
  (core func $read-words (canon lower (func $bytes "read-words")
    (memory $memory "memory") (realloc (func $memory "realloc"))))

  (core module $main-module
    (import "env" "memory" (memory 1))
    (import "host" "read-text" (func $read-text (param i64 i32)))
    (import "host" "read-words" (func $read-words (param i64 i32)))
    ;; option<...> at offset 0: the tag byte (0 = none), then (ptr, len) at 4.
    (func (export "text") (result i32)
      (block $end
        (loop $next
          (call $read-text (i64.const 65536) (i32.const 0))
          (br_if $end (i32.eqz (i32.load8_u (i32.const 0))))
          (br $next)))
      (i32.const 0))
    (func (export "words") (result i32)
      (block $end
        (loop $next
          (call $read-words (i64.const 65536) (i32.const 0))
          (br_if $end (i32.eqz (i32.load8_u (i32.const 0))))
          (br $next)))
      (i32.const 0)))
  (core instance $main (instantiate $main-module
    (with "env" (instance $memory))
    (with "host" (instance
      (export "read-text" (func $read-text))
      (export "read-words" (func $read-words))))))

  (func $text (result (result)) (canon lift (core func $main "text")))
  (func $words (result (result)) (canon lift (core func $main "words")))
  (export "read-text-to-end" (func $text))
  (export "read-words-to-end" (func $words)))
