// Test helper: serves files over a tiny local HTTP server and opens them in Debian's headless
// Chromium through playwright-core. Shared by the browser tests and (later) the WebGPU tests.
// Not a test itself: the test runner ignores tests/helpers.
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';

/** The Chromium binary: $MEMFIT_CHROMIUM, else Debian's /usr/bin/chromium. */
export function chromiumPath(): string {
  return process.env.MEMFIT_CHROMIUM || '/usr/bin/chromium';
}

/** Flags: no sandbox (CI runs as root), no network chatter, WebGPU on the SwiftShader (CPU) Vulkan adapter. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--enable-features=Vulkan',
];

/** Throws a clear error (never skips) when Chromium is missing. */
export function requireChromium(): string {
  const path = chromiumPath();
  if (!existsSync(path)) {
    throw new Error(
      `Chromium not found at ${path}. The browser tests need Debian's chromium: ` +
      `run \`apt-get install -y chromium\` (or set MEMFIT_CHROMIUM to a Chromium binary).`,
    );
  }
  return path;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.wgsl': 'text/plain; charset=utf-8',
};

/**
 * What the server serves: URL path (e.g. '/memfit.js') -> a file on disk (`{ file }`) or inline
 * content (a string or `{ body, type? }`). '/' is the page itself.
 */
export type ServedFiles = Record<string, string | { file: string; type?: string } | { body: string | Uint8Array; type?: string }>;

export interface Served {
  readonly server: Server;
  /** e.g. 'http://127.0.0.1:43210' */
  readonly origin: string;
  close(): Promise<void>;
}

/** Starts a static server on 127.0.0.1 with a random free port. Files on disk are read per request. */
export async function serve(files: ServedFiles, headers: Record<string, string> = {}): Promise<Served> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const entry = files[path];
    if (entry === undefined && path === '/favicon.ico') {
      res.writeHead(204).end(); // keeps "404" noise out of the page's console log
      return;
    }
    if (entry === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}`);
      return;
    }
    try {
      let body: string | Uint8Array;
      let type: string | undefined;
      if (typeof entry === 'string') body = entry;
      else if ('file' in entry) { body = readFileSync(entry.file); type = entry.type; }
      else { body = entry.body; type = entry.type; }
      type ??= MIME[extname(path)] ?? (path.endsWith('/') ? MIME['.html'] : 'application/octet-stream');
      res.writeHead(200, { ...headers, 'content-type': type, 'cache-control': 'no-store' }).end(body);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    server,
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * Launches headless Chromium with CHROMIUM_ARGS (plus `extraArgs`). playwright-core gives every
 * launch a fresh temporary profile (and deletes it on close), so no --user-data-dir is passed.
 */
export async function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  const executablePath = requireChromium();
  try {
    return await chromium.launch({
      executablePath,
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
      timeout: 60_000,
    });
  } catch (e) {
    throw new Error(`could not launch Chromium at ${executablePath}: ${(e as Error).message}`);
  }
}

export interface PageContext {
  readonly page: Page;
  readonly origin: string;
  /** Console messages and uncaught page errors seen so far (for failure messages). */
  readonly log: string[];
}

/**
 * Serves `html` at '/' plus `files`, opens it in headless Chromium, runs `fn`, then closes the
 * browser and the server (always). Waits for `window.__ready` to be true when the page sets it
 * to false at first (pages with module scripts set it when their imports have loaded). `headers`
 * go with every response (e.g. COOP/COEP for a cross-origin isolated page).
 */
export async function withPage<T>(html: string, files: ServedFiles, fn: (ctx: PageContext) => Promise<T>, headers: Record<string, string> = {}): Promise<T> {
  const served = await serve({ ...files, '/': { body: html, type: MIME['.html'] } }, headers);
  try {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const log: string[] = [];
      page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
      await page.goto(`${served.origin}/`, { waitUntil: 'load' });
      try {
        await page.waitForFunction(() => (globalThis as { __ready?: boolean }).__ready !== false, undefined, { timeout: 30_000 });
      } catch (e) {
        throw new Error(`page did not become ready: ${(e as Error).message}\n${log.join('\n')}`);
      }
      return await fn({ page, origin: served.origin, log });
    } finally {
      await browser.close();
    }
  } finally {
    await served.close();
  }
}
