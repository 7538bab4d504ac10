// The demo page's server (`npm run demo`, scripts/demo-server.ts): the page, its script, the browser
// bundle and the State of the Union text, on 127.0.0.1 only, cross-origin isolated (COOP/COEP) so
// that the page may use SharedArrayBuffer and threads. Node only; not part of the package API.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadSotuText } from '../data/sotu.js';

export interface DemoServerOptions {
  /** TCP port on 127.0.0.1 (0: any free port). Default 8080. */
  port?: number;
  /** The package root (holding src/demo and dist/browser); default: this file's package. */
  root?: string;
  /** The training text served as /sotu.txt; default: State of the Union addresses since 1990. */
  text?: string;
}

export interface DemoServer {
  /** e.g. 'http://127.0.0.1:8080/' */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const HEADERS = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

/** Starts the server; resolves once it listens. Throws when the browser bundle has not been built. */
export async function startDemoServer(options: DemoServerOptions = {}): Promise<DemoServer> {
  const root = options.root ?? fileURLToPath(new URL('../..', import.meta.url));
  const file = (p: string): string => `${root.replace(/\/$/, '')}/${p}`;
  const files: Record<string, { path: string; type: string }> = {
    '/': { path: file('src/demo/index.html'), type: 'text/html; charset=utf-8' },
    '/demo.js': { path: file('dist/browser/demo.js'), type: 'text/javascript; charset=utf-8' },
    '/demo.js.map': { path: file('dist/browser/demo.js.map'), type: 'application/json; charset=utf-8' },
    '/memfit.js': { path: file('dist/browser/memfit.js'), type: 'text/javascript; charset=utf-8' },
    '/memfit.js.map': { path: file('dist/browser/memfit.js.map'), type: 'application/json; charset=utf-8' },
  };
  for (const p of ['/', '/demo.js', '/memfit.js']) {
    if (!existsSync(files[p].path)) throw new Error(`${files[p].path} is missing: run \`npm run build\` first (\`npm run demo\` does)`);
  }
  const text = Buffer.from(options.text ?? loadSotuText({ fromYear: 1990 }), 'utf8');

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...HEADERS, allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed');
      return;
    }
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    let body: Buffer, type: string;
    if (path === '/sotu.txt') {
      body = text;
      type = 'text/plain; charset=utf-8';
    } else if (path === '/favicon.ico') {
      res.writeHead(204, HEADERS).end();
      return;
    } else if (files[path]) {
      try {
        body = readFileSync(files[path].path); // per request: a rebuild shows on reload
      } catch (e) {
        res.writeHead(500, { ...HEADERS, 'content-type': 'text/plain' }).end(`cannot read ${path}: ${(e as Error).message}`);
        return;
      }
      type = files[path].type;
    } else {
      res.writeHead(404, { ...HEADERS, 'content-type': 'text/plain' }).end(`not found: ${path}`);
      return;
    }
    res.writeHead(200, { ...HEADERS, 'content-type': type, 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const server = createServer(handle);
  const port = options.port ?? 8080;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'EADDRINUSE' ? new Error(`port ${port} on 127.0.0.1 is in use: pass another with --port (0 picks a free one)`) : e);
    });
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}/`,
    port: bound,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
