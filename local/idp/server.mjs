// LOCAL STAND-IN, not a real identity provider: serves the demo's OpenID Connect issuers (the
// Cognito-like sign-in issuer and the notes API's authorization server) from one process, each on
// its own host and port, with `oidc-provider` from npm. See local/idp/__init__.py.
//
//   node local/idp/server.mjs --config <path.json> [--exit-with-stdin]
//
// Prints `READY <name> <issuer-url>` on stdout once per issuer when all of them listen; nothing
// else is written to stdout (oidc-provider's notices go to stderr). A bad configuration prints one
// line naming the key on stderr and exits 2. SIGTERM and SIGINT close the servers and exit 0, and
// so does the end of stdin with --exit-with-stdin (how IdpProcess makes sure nothing outlives it).
//
// oidc-provider 9 prints "Unsupported runtime" on any Node release older than 22 LTS. It runs on
// Node 20.19+ (tests/local/test_idp.py exercises it there), so that one warning is filtered out.
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import { ConfigError, loadConfig } from './config.mjs';

const RUNTIME_WARNING = 'oidc-provider WARNING: Unsupported runtime.';

function routeConsoleToStderr() {
  const write = (...args) => process.stderr.write(`${args.map(String).join(' ')}\n`);
  console.log = write;
  console.info = write;
  const warn = console.warn.bind(console);
  console.warn = (...args) => {
    if (typeof args[0] === 'string' && args[0].includes(RUNTIME_WARNING)) return;
    warn(...args);
  };
}

function fail(message, code) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function listen(server, host, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function main() {
  let args;
  try {
    ({ values: args } = parseArgs({ options: { config: { type: 'string' }, 'exit-with-stdin': { type: 'boolean' } }, strict: true }));
  } catch (error) {
    fail(`--config: ${error.message}`, 2);
  }
  if (!args.config) fail('--config: required (path to the JSON configuration)', 2);

  let config;
  try {
    config = loadConfig(args.config);
  } catch (error) {
    if (error instanceof ConfigError) fail(`config error: ${error.message}`, 2);
    throw error;
  }

  routeConsoleToStderr();
  // Imported after the console is routed: oidc-provider warns at import time.
  const { createProvider } = await import('./provider.mjs');

  const servers = [];
  const stores = [];
  for (const issuer of config.issuers) {
    const provider = createProvider(issuer);
    stores.push(provider.store);
    const server = createServer(provider.callback());
    server.keepAliveTimeout = 5_000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    servers.push({ issuer, server });
  }

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    stores.forEach((store) => store.close());
    process.stdin.destroy();
    const closed = servers.map(
      ({ server }) =>
        new Promise((resolve) => {
          server.close(resolve);
          server.closeAllConnections();
        }),
    );
    Promise.all(closed).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2_000).unref(); // in case a connection lingers
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (args['exit-with-stdin']) {
    // The launcher holds our stdin open; if it dies without stopping us (SIGKILL), stdin closes
    // and we stop instead of being left behind holding the ports.
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }

  for (const { issuer, server } of servers) {
    try {
      await listen(server, issuer.host, issuer.port);
    } catch (error) {
      stop();
      fail(`issuers[${config.issuers.indexOf(issuer)}].port: cannot listen on ${issuer.host}:${issuer.port}: ${error.code ?? error.message}`, 1);
    }
  }
  process.stdout.write(servers.map(({ issuer }) => `READY ${issuer.name} ${issuer.issuer}\n`).join(''));
}

main().catch((error) => {
  process.stderr.write(`idp: ${error?.stack ?? error}\n`);
  process.exit(1);
});
