// `npm run demo [-- --port N]`: serves the demo page (src/demo) on http://127.0.0.1:8080/ until Ctrl+C.
import { parseArgs } from 'node:util';
import { startDemoServer } from '../src/demo/server.js';

const USAGE = 'usage: npm run demo -- [--port N]   (N: 1-65535, or 0 for any free port; default 8080)';
try {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(USAGE);
  } else {
    const port = Number(values.port);
    if (!/^\d+$/.test(values.port!) || port > 65535) throw new Error(`--port must be an integer from 0 to 65535, got ${JSON.stringify(values.port)}\n${USAGE}`);
    const server = await startDemoServer({ port });
    console.log(`memfit demo: ${server.url}  (127.0.0.1 only; Ctrl+C stops it)`);
    const stop = (): void => { void server.close().then(() => process.exit(0)); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
} catch (e) {
  console.error(`memfit demo: ${(e as Error).message}`);
  process.exitCode = 1;
}
