import type { Command } from 'commander';
import { generateKey, type KeyAlgorithm, keyAlgorithms, writeKeyFile } from '../crypto/keys.ts';

export function registerKeygen(program: Command): void {
  program
    .command('keygen')
    .description(
      'Create a signing key pair: <out> (private, mode 0600) and <out>.pub (public); never overwrites',
    )
    .requiredOption('-o, --out <file>', 'private key file to create, e.g. data/keys/gateway.key')
    .option('-a, --alg <alg>', `key algorithm: ${keyAlgorithms.join(' | ')}`, 'ed25519')
    .action((opts: { out: string; alg: string }) => {
      if (!(keyAlgorithms as readonly string[]).includes(opts.alg)) {
        throw new Error(`unknown key algorithm "${opts.alg}": use ${keyAlgorithms.join(' or ')}`);
      }
      const key = generateKey(opts.alg as KeyAlgorithm);
      const { publicPath } = writeKeyFile(opts.out, key);
      console.log(`wrote ${opts.out} (private, 0600) and ${publicPath}; keyId ${key.keyId} (${key.alg})`);
    });
}
