/** Byte and hex helpers of src/crypto/hash.ts. */
import { describe, expect, it } from 'vitest';
import { bytesEqual, fromHex, toHex } from '../../src/crypto/hash.ts';

describe('bytesEqual', () => {
  it('compares views by their bytes, not by their buffers or offsets', () => {
    const backing = new Uint8Array([9, 1, 2, 3, 9, 1, 2, 3]);
    const a = backing.subarray(1, 4);
    const b = backing.subarray(5, 8);
    expect(bytesEqual(a, b)).toBe(true);
    expect(bytesEqual(a, Uint8Array.of(1, 2, 3))).toBe(true);
    expect(bytesEqual(a, Uint8Array.of(1, 2, 4))).toBe(false);
    expect(bytesEqual(a, backing.subarray(1, 3))).toBe(false);
    expect(bytesEqual(new Uint8Array(0), backing.subarray(4, 4))).toBe(true);
    // Only the view's bytes count, not what surrounds it.
    expect(bytesEqual(backing.subarray(0, 2), Uint8Array.of(9, 1))).toBe(true);
  });

  it('finds a difference at any position of a large batch', () => {
    const big = new Uint8Array(300_000).map((_, i) => i * 7);
    for (const at of [0, 1, 150_001, 299_999]) {
      const other = big.slice();
      other[at] = other[at]! ^ 0x80;
      expect(bytesEqual(big, other)).toBe(false);
    }
    expect(bytesEqual(big, big.slice())).toBe(true);
  });
});

describe('hex', () => {
  it('round-trips and refuses what is not lower-case hex of whole bytes', () => {
    expect(toHex(fromHex('00ff7a'))).toBe('00ff7a');
    for (const bad of ['0', 'FF', 'zz', '0x00']) expect(() => fromHex(bad)).toThrow(TypeError);
  });
});
