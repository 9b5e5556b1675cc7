import { describe, expect, it } from 'vitest';
import { CanonicalEncodingError, canonicalJson, encodeCanonical } from '../../src/crypto/canonical.ts';

describe('canonical JSON (RFC 8785)', () => {
  it('sorts keys by UTF-16 code units and drops whitespace', () => {
    // RFC 8785 §3.2.3's sorting example: keys compared as UTF-16 code units, not code points.
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    const keys = Object.keys(JSON.parse(canonicalJson(input)));
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
    expect(keys).toHaveLength(7);
  });

  it('prints numbers as ECMAScript does (RFC 8785 §3.2.2.3 examples)', () => {
    const cases: [number, string][] = [
      [0, '0'],
      [-0, '0'],
      [1e21, '1e+21'],
      [1e-7, '1e-7'],
      [333333333.3333333, '333333333.3333333'],
      [9007199254740991, '9007199254740991'],
      [4.5, '4.5'],
      [0.002, '0.002'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
    ];
    for (const [n, text] of cases) expect(canonicalJson(n)).toBe(text);
  });

  it('gives byte-identical output for the same value built in different key orders', () => {
    const a = {
      seq: 7,
      values: { t: { v: 21.5, unit: 'degC', q: 'good' } },
      lot: 'L-1',
      nested: [{ z: 1, a: 2 }],
    };
    const b = {
      nested: [{ a: 2, z: 1 }],
      lot: 'L-1',
      values: { t: { q: 'good', unit: 'degC', v: 21.5 } },
      seq: 7,
    };
    expect(Buffer.from(encodeCanonical(a)).equals(Buffer.from(encodeCanonical(b)))).toBe(true);
    expect(
      Buffer.from(encodeCanonical(JSON.parse(canonicalJson(a)))).equals(Buffer.from(encodeCanonical(a))),
    ).toBe(true);
  });

  it('omits undefined members and escapes strings like JSON', () => {
    expect(canonicalJson({ a: undefined, b: 'x"\n\u0001' })).toBe('{"b":"x\\"\\n\\u0001"}');
  });

  it('rejects values JSON cannot represent exactly', () => {
    for (const bad of [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      1n,
      () => 1,
      new Date(0),
      '\ud800',
      { k: '\udc00' },
    ]) {
      expect(() => canonicalJson(bad)).toThrow(CanonicalEncodingError);
    }
  });

  it('rejects nesting deeper than its bound', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(() => canonicalJson(deep)).toThrow(/deeper than/);
  });
});
