// The `memfit` command (bin/memfit.js runs the bundle of this file, dist/node/cli.js).
import { createRequire } from 'node:module';
import { Command, Option } from 'commander';
import { MemfitError, decode, encode, finfo, formatOf, formatTable, FORMATS, type Rounding, TRAIN_PRECISIONS, TRAIN_MEMORY_PRESETS } from '../index.js';
import { convertFile, DEFAULT_CHUNK } from './convert.js';
import { demoLines } from './demo.js';
import { trainCommand } from './train.js';
import { addInspectCommand } from './inspect.js';
import { addConvertModelCommand } from './convert_model.js';
import { addPlanCommand } from './plan.js';
import { CliError, echoNumber, exactDecimal, hexCode, parseHexCode, parseNumber, terminalSafe, writeLine } from './format.js';

const ROUNDINGS: readonly Rounding[] = ['nearest-even', 'toward-zero', 'stochastic'];

function version(): string {
  try {
    // dist/node/cli.js and src/cli/main.ts both sit two levels below the package root.
    return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function parseSeed(text: string): bigint {
  const t = text.trim();
  if (!/^(?:-?\d+|0x[0-9a-f]+)$/i.test(t)) throw new CliError(`--seed must be an integer (decimal or 0x hex), got ${JSON.stringify(text)}`);
  return BigInt.asUintN(64, BigInt(t));
}

function parseChunk(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 4 || n % 4 !== 0) throw new CliError(`--chunk-size must be a positive multiple of 4, got ${JSON.stringify(text)}`);
  return n;
}

function roundingOption(): Option {
  return new Option('--rounding <mode>', 'rounding mode').choices(ROUNDINGS).default('nearest-even');
}

function out(line: string): void {
  writeLine(process.stdout, line);
}

export function buildProgram(): Command {
  const program = new Command('memfit');
  program
    .description('train neural networks in less memory: a training demo, bit-exact low-precision floats (fp16, bf16, fp8, fp6, fp4, OCP MX), format tables and file conversion')
    .version(version(), '-V, --version')
    .configureOutput({
      outputError: (str, write) => {
        let msg = str.replace(/^error: /, '');
        const neg = /unknown option '(-[^']*)'/.exec(msg);
        if (neg && /^-[\d.]|^-(inf|infinity|nan)$/i.test(neg[1])) {
          msg = msg.trimEnd() + `\n(to pass a negative value, put it after --, e.g. memfit encode --dtype e4m3fn -- ${neg[1]})\n`;
        }
        write(`memfit: ${terminalSafe(msg)}`);
      },
    })
    .showHelpAfterError('(add --help for usage)');

  program
    .command('finfo')
    .description('print the limits of every format (or of one dtype) as a table')
    .argument('[dtype]', 'dtype name or alias, e.g. float8_e4m3fn, e4m3, bf16, fp4')
    .option('--json', 'print the finfo object(s) as JSON')
    .action((dtype: string | undefined, opts: { json?: boolean }) => {
      const names = dtype === undefined ? FORMATS.map((f) => f.name) : [formatOf(dtype).name];
      if (opts.json) {
        const infos = names.map((n) => finfo(n));
        out(JSON.stringify(dtype === undefined ? infos : infos[0], null, 2));
      } else {
        out(formatTable(names));
      }
    });

  program
    .command('convert')
    .description('convert a raw little-endian file of codes of one dtype to codes of another, streaming')
    .argument('<input>', 'input file (float32 values, or codes of --from)')
    .argument('<output>', 'output file (replaced atomically; a device or FIFO is written in place)')
    .requiredOption('--from <dtype>', 'dtype of the input codes')
    .requiredOption('--to <dtype>', 'dtype of the output codes')
    .option('--saturate', 'clamp overflow and ±inf to ±max instead of producing inf/NaN')
    .addOption(roundingOption())
    .option('--seed <n>', 'seed for --rounding stochastic: the same seed gives the same output, whatever the chunk size (one encode of the whole file)', parseSeed)
    .option('--unpacked', 'fp4/fp6 files hold one code a byte (default: packed, fp4 two a byte, fp6 four in three bytes)')
    .option('-q, --quiet', 'no progress bar')
    .option('--force', 'replace an existing output file (even the input file itself)')
    .addOption(new Option('--chunk-size <elements>', 'elements per chunk (multiple of 4)').argParser(parseChunk).default(DEFAULT_CHUNK).hideHelp())
    .addHelpText('after', `
16-bit codes are little-endian uint16; float32 input is read as float32 values, other inputs are
decoded exactly to float32 and then encoded. A packed fp4 file of s bytes holds 2s codes; a packed
fp6 file of s bytes holds floor(8s/6) codes (trailing bits are padding).

Example:
  memfit convert --from float32 --to e4m3fn --saturate weights.f32 weights.e4m3`)
    .action(async (input: string, output: string, opts: {
      from: string; to: string; saturate?: boolean; rounding: Rounding; seed?: bigint; unpacked?: boolean; quiet?: boolean; force?: boolean; chunkSize: number;
    }) => {
      await convertFile({
        from: opts.from, to: opts.to, input, output, saturate: opts.saturate, rounding: opts.rounding,
        seed: opts.seed, unpacked: opts.unpacked, chunk: opts.chunkSize, progress: !opts.quiet, force: opts.force,
      });
    });

  addInspectCommand(program, out);
  addConvertModelCommand(program, { out, parseSeed, rounding: roundingOption });

  program
    .command('decode')
    .description('decode codes given in hex and print their exact values')
    .argument('<codes...>', 'codes in hex, with or without 0x (fp4/fp6: one code each, not packed)')
    .requiredOption('--dtype <dtype>', 'dtype of the codes')
    .addHelpText('after', '\nExample:\n  memfit decode --dtype float8_e4m3fn 7e 0x7f 01    # 448, NaN, 0.001953125')
    .action((codes: string[], opts: { dtype: string }) => {
      const f = formatOf(opts.dtype);
      const parsed = codes.map((c) => parseHexCode(c, f));
      const values = decode(parsed, f.name);
      parsed.forEach((c, i) => out(`${hexCode(f, c)}  ${exactDecimal(values[i])}`));
    });

  program
    .command('encode')
    .description('encode numbers and print each code in hex with the value it decodes to')
    .argument('<values...>', 'numbers (binary64): 1.5, -2e-3, 0x10, -0x10, 1/3, inf, nan (-nan: the NaN with the sign bit set; 0/0 is +nan)')
    .requiredOption('--dtype <dtype>', 'dtype to encode to')
    .option('--saturate', 'clamp overflow and ±inf to ±max')
    .addOption(roundingOption())
    .option('--seed <n>', 'seed for --rounding stochastic', parseSeed)
    .addHelpText('after', '\nNegative numbers work as they are (memfit encode --dtype e4m3fn -1.5); put -inf or -nan after --.\n\nExample:\n  memfit encode --dtype e4m3fn --saturate 0.1 500 -- -1.5')
    .action((texts: string[], opts: { dtype: string; saturate?: boolean; rounding: Rounding; seed?: bigint }) => {
      const f = formatOf(opts.dtype);
      if (opts.seed !== undefined && opts.rounding !== 'stochastic') throw new CliError('--seed only applies to --rounding stochastic');
      const values = texts.map(parseNumber);
      const codes = encode(values, f.name, { saturate: opts.saturate, rounding: opts.rounding, seed: opts.seed });
      const back = decode(codes, f.name);
      values.forEach((v, i) => out(`${echoNumber(v)} -> ${hexCode(f, codes[i])} (${exactDecimal(back[i])})`));
    });

  // Decimal digits only: Number() would also take '' (0), '0x10' and '1e3'.
  const int = (name: string) => (v: string) => {
    const n = /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n)) throw new CliError(`${name} must be an integer, got ${JSON.stringify(v)}`);
    return n;
  };
  program
    .command('train')
    .description('train a tiny Llama-style model on byte-level text (State of the Union by default) and report loss, throughput and memory (what `npm start` runs)')
    .option('--steps <n>', 'optimizer steps', int('--steps'), 300)
    .option('--batch-size <n>', 'sequences per batch', int('--batch-size'), 8)
    .option('--seq-len <n>', 'tokens (bytes) per sequence', int('--seq-len'), 64)
    .option('--lr <x>', 'peak learning rate', (v) => parseNumber(v), 3e-3)
    .option('--seed <n>', 'seed of the weights and the data order', int('--seed'), 0)
    .addOption(new Option('--backend <kind>', 'auto: a hardware GPU if present, else wasm (webgpu: any adapter, SwiftShader included)').choices(['auto', 'wasm', 'webgpu']).default('auto'))
    .option('--verbose', 'also print what the WebGPU probe saw (driver messages, adapters refused)', false)
    .addOption(new Option('--precision <p>', '32-true (float32), bf16-mixed (bfloat16 autocast, float32 weights), 16-mixed (float16 autocast + GradScaler), bf16-true or 16-true (bfloat16 or float16 weights), or fp8 (Linear layers in fp8 with delayed scaling, the rest under bfloat16 autocast)').choices([...TRAIN_PRECISIONS]).default('32-true'))
    .option('--master-weights', 'bf16-true / 16-true: keep float32 master weights in the optimizer (4 more bytes a parameter)', false)
    .option('--stochastic-rounding', 'bf16-true / 16-true: round weight updates stochastically instead of to nearest', false)
    .addOption(new Option('--optimizer <name>', 'adamw (float32 state), adamw8bit (bitsandbytes-style 8-bit state, about a quarter of the optimizer memory), adamw8bit-paged (8-bit state kept in host memory, streamed to the GPU), adam or sgd').choices(['adamw', 'adamw8bit', 'adamw8bit-paged', 'adam', 'sgd']).default('adamw'))
    .option('--text <file>', 'a UTF-8 text file to train on')
    .option('--checkpoint-modules <regex>', 'activation checkpointing: recompute in backward the activations of the modules whose dotted names match (e.g. \'^layers\\.\\d+$\')')
    .option('--checkpoint-chunks <n|auto>', 'with --checkpoint-modules: run each checkpointed module on n pieces of the batch, recomputed one at a time in backward (for modules that treat each sequence alone, such as decoder layers); auto: pieces of at least 16Ki activations', (v) => (v === 'auto' ? 'auto' : int('--checkpoint-chunks')(v)))
    .option('--checkpoint <path>', 'save a checkpoint here (atomically) at the end and every --checkpoint-every steps')
    .option('--checkpoint-every <n>', 'steps between checkpoints (0: only at the end)', int('--checkpoint-every'), 0)
    .option('--resume', 'continue from --checkpoint if it exists', false)
    .option('--force', 'overwrite an existing --checkpoint file that is not a checkpoint of this run, or a --report file that is not a memfit report (never the --text file)', false)
    .option('--sample <n>', 'bytes of text to generate at the end', int('--sample'), 120)
    .option('--json', 'print one JSON object instead of the report', false)
    .option('--report <file>', 'write an HTML report: loss, tokens/s and memory by category per step (one self-contained file, replaced atomically)')
    .option('--memory-budget <bytes|%>', 'checkpoint what `memfit plan` would choose so that a step\'s peak fits: bytes (256MiB) or a percentage of the unplanned activation memory (50%)')
    .option('--gradient-release', 'the optimizer steps inside backward, freeing each gradient as soon as it is used (gradients clipped per parameter; not with 16-mixed)', false)
    .option('--recompute-logits', 'keep no logits between forward and backward: the final norm, the head and the loss are computed again in backward (the same gradients; one more head matmul; a step\'s peak does not drop)', false)
    .addOption(new Option('--memory <preset>', 'least: bf16 weights with stochastic rounding, adamw8bit, per-layer checkpointing in chunks of the batch (auto) and gradient release (options given explicitly win)').choices([...TRAIN_MEMORY_PRESETS]))
    .action(async (o, cmd: Command) => {
      // A preset fills what the command line did not give: defaults do not count as given.
      if (o.memory) for (const k of ['precision', 'optimizer']) if (cmd.getOptionValueSource(k) === 'default') delete o[k];
      await trainCommand(o, out);
    });

  addPlanCommand(program, out, int);

  program
    .command('demo')
    .description('print the formats table and a short conversion demo')
    .action(() => {
      for (const line of demoLines()) out(line);
    });

  return program;
}

/**
 * When the reader of stdout goes away (`memfit demo | head -1`), further writes fail with EPIPE: exit
 * at once and quietly, as command-line tools do, instead of dying on an unhandled 'error' event.
 */
function quietOnClosedStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

/** Runs the command line; user errors print `memfit: <message>` and set exit code 1. */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  quietOnClosedStdout();
  try {
    await buildProgram().parseAsync(argv as string[]);
  } catch (err) {
    const e = err as Error & { code?: unknown };
    // An output pipe whose reader went away (`memfit convert in /dev/stdout | head -c 4`, a FIFO):
    // a quiet stop with status 141, as a tool killed by SIGPIPE (the output is cut short).
    if (e?.code === 'EPIPE') {
      process.exitCode = 141;
      return;
    }
    process.exitCode = 1;
    // Messages may quote the input (tensor names, metadata): writeLine escapes its control characters.
    if (err instanceof MemfitError || err instanceof CliError) {
      writeLine(process.stderr, `memfit: ${e.message}`);
    } else if (typeof e?.code === 'string' && typeof e.message === 'string' && /^E[A-Z]+$/.test(e.code)) {
      // Node system errors (ENOENT, EACCES, EISDIR...): the message names the path.
      writeLine(process.stderr, `memfit: ${e.message}`);
    } else {
      writeLine(process.stderr, `memfit: internal error: ${e?.stack ?? String(err)}`);
    }
  }
}

await main();
