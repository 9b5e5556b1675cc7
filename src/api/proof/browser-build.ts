/**
 * Bundles the pure verifier (browser.ts → verify.ts) into one ES module for the customer's trace
 * page, with esbuild, in memory: src/crypto/hash.ts and keys.ts are replaced by their browser twins
 * (browser/hash.ts, browser/keys.ts), so the bundle holds no node: import. Built once per process
 * (about a second) and kept.
 *
 * @example
 *   const js = await browserVerifierBundle();   // text of an ES module exporting verifyProofBundle
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const twins = new Map(
  ['hash', 'keys'].map((name) => [here(`../../crypto/${name}.ts`), here(`./browser/${name}.ts`)]),
);

/** Swaps node-only modules of src/crypto for their browser twins. */
const browserTwins: Plugin = {
  name: 'masbc-browser-twins',
  setup(b) {
    b.onResolve({ filter: /(hash|keys)\.ts$/ }, (args) => {
      const twin = twins.get(resolve(args.resolveDir, args.path));
      return twin ? { path: twin } : undefined;
    });
  },
};

let built: Promise<string> | undefined;

/** The verifier as one minified ES module (cached for the life of the process). */
export function browserVerifierBundle(): Promise<string> {
  built ??= build({
    entryPoints: [here('./browser.ts')],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    plugins: [browserTwins],
    logLevel: 'silent',
  }).then((r) => r.outputFiles[0]!.text);
  built.catch(() => {
    built = undefined;
  });
  return built;
}
