"""A wasi:tls conformance suite any host can run: `wasi-tls-host conformance`.

Guest components (built from guests/conformance/, shipped packed in
`components/`) each check one behaviour per run and print one result line;
`manifest.toml` lists the cases and what each needs; `peers` starts the TLS
and TCP peers the cases meet, on loopback, with a PKI made at run time by
`pki`; `runner` runs the cases against a host command and reports them
(`report`: table, JSON, JUnit XML); `command` is the command line.
"""
