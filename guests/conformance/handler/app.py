"""conformance-handler: the incoming handler the `serve` cases serve (world
`http-proxy`, so `wasmtime serve` runs it as it is).

    GET /bytes/N   N bytes of the suite's pattern, with Content-Length
    anything else  404

The body is written a chunk at a time, as each chunk is accepted.
"""

from componentize_py_types import Ok
from conformance_kit import pattern, write_all
from wit_world import exports
from wit_world.imports import wasi_http_types as http

CHUNK = 64 * 1024


def respond(response_out, status, data):
    headers = http.Fields.from_list([("content-type", b"application/octet-stream"),
                                     ("content-length", str(len(data)).encode())])
    response = http.OutgoingResponse(headers)
    response.set_status_code(status)
    body = response.body()
    http.ResponseOutparam.set(response_out, Ok(response))
    stream = body.write()
    for start in range(0, len(data), CHUNK):
        write_all(stream, data[start:start + CHUNK], "response body")
    stream.__exit__(None, None, None)
    http.OutgoingBody.finish(body, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out) -> None:
        path = request.path_with_query() or "/"
        size = path.removeprefix("/bytes/")
        if isinstance(request.method(), http.Method_Get) and path != size and size.isdigit():
            respond(response_out, 200, pattern(int(size)))
        else:
            respond(response_out, 404, b"no such route\n")
