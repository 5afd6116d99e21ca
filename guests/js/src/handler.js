// An incoming-handler component (the wasi:http/proxy world) written the way
// JavaScript authors write one: a service-worker style `fetch` event listener,
// which StarlingMonkey turns into the wasi:http/incoming-handler export.
//
//   GET  /              a greeting naming the method and path
//   POST /echo          the request body streamed back as it arrives
//   GET  /bytes/N       N bytes of a pattern: byte i is i % 251
//   GET  /headers       JSON: the method, URL and headers the handler received
//   GET  /fetch?url=U   fetch(U) from inside the handler, relayed (a proxy)
//
// Every response carries x-received-method and x-received-path. Anything
// else is 404; an outgoing fetch that fails is 502 with the error.

const CHUNK = 65536;
// A prime, so the pattern does not line up with power-of-two chunk sizes and
// a lost, repeated or shifted chunk changes the bytes.
const PATTERN_PERIOD = 251;

function patternStream(length) {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      const size = Math.min(CHUNK, length - sent);
      const chunk = new Uint8Array(size);
      for (let i = 0; i < size; i++) chunk[i] = (sent + i) % PATTERN_PERIOD;
      sent += size;
      controller.enqueue(chunk);
      if (sent === length) controller.close();
    },
  }, { highWaterMark: 0 });
}

function text(body, status = 200) {
  return new Response(body, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } });
}

async function proxy(target) {
  if (!target) return text('GET /fetch needs ?url=\n', 400);
  let upstream;
  try {
    upstream = await fetch(target);
  } catch (error) {
    const cause = error.cause ? ` (${error.cause.message ?? error.cause})` : '';
    return text(`fetch ${target} failed: ${error.message}${cause}\n`, 502);
  }
  const headers = new Headers(upstream.headers);
  headers.set('x-upstream-status', String(upstream.status));
  return new Response(upstream.body, { status: upstream.status, headers });
}

async function route(request) {
  const url = new URL(request.url);
  const { method } = request;
  const path = url.pathname;
  if (method === 'GET' && path === '/') {
    return text(`Hello from a JavaScript component: ${method} ${path}\n`);
  }
  if (method === 'POST' && path === '/echo') {
    const headers = {};
    const type = request.headers.get('content-type');
    if (type) headers['content-type'] = type;
    return new Response(request.body, { headers });
  }
  const bytes = /^\/bytes\/(\d+)$/.exec(path);
  if (method === 'GET' && bytes) {
    const length = Number(bytes[1]);
    if (length === 0) return new Response(new Uint8Array(0));
    return new Response(patternStream(length), {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
    });
  }
  if (method === 'GET' && path === '/headers') {
    const received = { method, url: request.url, headers: [...request.headers] };
    return new Response(JSON.stringify(received), { headers: { 'content-type': 'application/json' } });
  }
  if (method === 'GET' && path === '/fetch') return proxy(url.searchParams.get('url'));
  return text(`no route for ${method} ${path}\n`, 404);
}

addEventListener('fetch', (event) => {
  event.respondWith(route(event.request).then((response) => {
    const url = new URL(event.request.url);
    response.headers.set('x-received-method', event.request.method);
    response.headers.set('x-received-path', url.pathname + url.search);
    return response;
  }));
});
