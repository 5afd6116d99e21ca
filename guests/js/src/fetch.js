// A command component (exports wasi:cli/run) that fetch()es one URL, the way
// a JavaScript author writes it, and reports what came back on stdout:
//
//   status 200
//   header content-type: text/plain
//   body-bytes 1234
//   body-sha256 <hex>
//
// Usage: fetch.wasm [-X METHOD] [-H 'NAME: VALUE']... [--body-stdin]
//                   [--no-hash] URL
//
// --body-stdin streams stdin as the request body (a ReadableStream, so the
// body goes out as it is read, never whole). --no-hash counts the response
// body chunk by chunk and keeps none of it; otherwise the body is kept to
// hash it, because crypto.subtle.digest takes the whole input at once.
// On failure the error goes to stderr and run() fails (exit status 1).

import { getArguments } from 'wasi:cli/environment@0.2.12';
import { getStdin } from 'wasi:cli/stdin@0.2.12';

const STDIN_CHUNK = 65536;

function usageError(message) {
  return new Error(
    `${message}\nusage: fetch.wasm [-X METHOD] [-H 'NAME: VALUE']... [--body-stdin] [--no-hash] URL`,
  );
}

function parseArguments(args) {
  const options = { method: 'GET', headers: [], bodyStdin: false, hash: true, url: null };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = () => {
      if (i + 1 >= args.length) throw usageError(`${arg} needs a value`);
      return args[++i];
    };
    if (arg === '-X' || arg === '--method') options.method = value();
    else if (arg === '-H' || arg === '--header') {
      const header = value();
      const colon = header.indexOf(':');
      if (colon < 1) throw usageError(`header ${JSON.stringify(header)} is not NAME: VALUE`);
      options.headers.push([header.slice(0, colon).trim(), header.slice(colon + 1).trim()]);
    } else if (arg === '--body-stdin') options.bodyStdin = true;
    else if (arg === '--no-hash') options.hash = false;
    else if (arg.startsWith('-')) throw usageError(`unknown option ${arg}`);
    else if (options.url === null) options.url = arg;
    else throw usageError(`unexpected argument ${arg}`);
  }
  if (options.url === null) throw usageError('no URL given');
  return options;
}

// stdin as a ReadableStream: each pull is one blocking read, so only one
// chunk is ever held.
function stdinStream() {
  const stdin = getStdin();
  return new ReadableStream({
    pull(controller) {
      try {
        controller.enqueue(stdin.blockingRead(BigInt(STDIN_CHUNK)));
      } catch (error) {
        // wasi:io reports end of input as the stream-error case `closed`.
        if (error?.payload?.tag === 'closed') controller.close();
        else controller.error(new Error(`reading stdin: ${describe(error)}`));
      }
    },
  }, { highWaterMark: 0 });
}

function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

function describe(error) {
  if (error instanceof Error) return error.cause ? `${error.message} (${describe(error.cause)})` : error.message;
  return JSON.stringify(error) ?? String(error);
}

async function fetchAndReport(options) {
  const init = { method: options.method, headers: options.headers };
  if (options.bodyStdin) {
    init.body = stdinStream();
    init.duplex = 'half';
  }
  const response = await fetch(options.url, init);
  console.log(`status ${response.status}`);
  for (const [name, value] of response.headers) console.log(`header ${name}: ${value}`);

  const chunks = [];
  let size = 0;
  if (response.body) {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (options.hash) chunks.push(value);
    }
  }
  console.log(`body-bytes ${size}`);
  if (options.hash) {
    const body = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      body.set(chunk, offset);
      offset += chunk.byteLength;
    }
    console.log(`body-sha256 ${hex(await crypto.subtle.digest('SHA-256', body))}`);
  }
}

export const run = {
  async run() {
    try {
      await fetchAndReport(parseArguments(getArguments().slice(1)));
    } catch (error) {
      console.error(`fetch.wasm: ${describe(error)}`);
      // A thrown error is the run export's `err` result: exit status 1.
      throw error;
    }
  },
};
