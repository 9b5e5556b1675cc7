import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromBase64Url } from '../../src/crypto/hash.ts';
import {
  generateKey,
  KeyFileError,
  keyAlgorithms,
  loadKeyFile,
  nodeVerifier,
  writeKeyFile,
} from '../../src/crypto/keys.ts';
import { nobleVerifier } from '../../src/crypto/noble.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('keys', () => {
  for (const alg of keyAlgorithms) {
    it(`${alg}: node:crypto and @noble/curves agree on valid and invalid signatures`, () => {
      const key = generateKey(alg);
      const msg = new TextEncoder().encode('part completed');
      const sig = key.sign(msg);
      expect(sig.byteLength).toBe(64);
      for (const v of [nodeVerifier, nobleVerifier]) {
        expect(v.verify(alg, key.publicKey, msg, sig)).toBe(true);
        const bad = sig.slice();
        bad[10]! ^= 1;
        expect(v.verify(alg, key.publicKey, msg, bad)).toBe(false);
        expect(v.verify(alg, key.publicKey, new TextEncoder().encode('part Completed'), sig)).toBe(false);
        expect(v.verify(alg, generateKey(alg).publicKey, msg, sig)).toBe(false);
        expect(v.verify(alg, key.publicKey, msg, sig.subarray(0, 63))).toBe(false);
      }
    });

    it(`${alg}: key file round trip, mode 0600, refuses to overwrite`, () => {
      const dir = tempDir('keys');
      const path = join(dir, 'sub', 'gateway.key');
      const key = generateKey(alg);
      const { publicPath } = writeKeyFile(path, key);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const loaded = loadKeyFile(path);
      expect(loaded.keyId).toBe(key.keyId);
      expect(loaded.alg).toBe(alg);
      const pub = JSON.parse(readFileSync(publicPath, 'utf8'));
      expect(pub).toEqual({ alg, keyId: key.keyId, publicKey: expect.any(String) });
      expect(fromBase64Url(pub.publicKey)).toEqual(key.publicKey);
      expect(() => writeKeyFile(path, generateKey(alg))).toThrow(/refusing to overwrite/);
      expect(loadKeyFile(path).keyId).toBe(key.keyId);
    });
  }

  it('explains a missing or garbage key file', () => {
    const dir = tempDir('keys');
    expect(() => loadKeyFile(join(dir, 'nope.key'))).toThrow(/does not exist.*keygen/);
    const junk = join(dir, 'junk.key');
    writeKeyFile(join(dir, 'ok.key'), generateKey());
    writeFileSync(junk, 'hello');
    expect(() => loadKeyFile(junk)).toThrow(KeyFileError);
  });
});
