import { describe, expect, it } from 'vitest';
import {
  crc16,
  createImage,
  encodeRtuFrame,
  encodeTcpResponse,
  handlePdu,
  MbapDecoder,
  MbapFramingError,
  putFloat32,
  putInt16Scaled,
  putString,
  putUint16,
  putUint32,
  RtuFramer,
} from '../../simulators/modbus-protocol.ts';

const pdu = (...bytes: number[]) => Buffer.from(bytes);

describe('handlePdu', () => {
  const image = createImage({ holding: 8, input: 4, coils: 10, discrete: 3 });
  image.holding.set([0x1234, 0xabcd, 7]);
  image.input.set([1, 2, 3, 4]);
  image.coils.set([1, 0, 1, 1, 0, 0, 0, 0, 1, 1]);

  it('reads registers big-endian and bits least significant first', () => {
    expect(handlePdu(image, pdu(0x03, 0, 0, 0, 3))).toEqual(pdu(0x03, 6, 0x12, 0x34, 0xab, 0xcd, 0, 7));
    expect(handlePdu(image, pdu(0x04, 0, 3, 0, 1))).toEqual(pdu(0x04, 2, 0, 4));
    // coils 0..9 = 1,0,1,1,0,0,0,0 | 1,1 -> 0b00001101, 0b00000011
    expect(handlePdu(image, pdu(0x01, 0, 0, 0, 10))).toEqual(pdu(0x01, 2, 0x0d, 0x03));
    expect(handlePdu(image, pdu(0x02, 0, 0, 0, 3))).toEqual(pdu(0x02, 1, 0));
  });

  it('answers with the exception the specification prescribes, in its order of checks', () => {
    expect(handlePdu(image, pdu(0x06, 0, 0, 0, 1))).toEqual(pdu(0x86, 0x01)); // write: not supported
    expect(handlePdu(image, pdu(0x2b, 0x0e, 1, 0))).toEqual(pdu(0xab, 0x01));
    expect(handlePdu(image, pdu(0x03, 0, 0, 0, 0))).toEqual(pdu(0x83, 0x03)); // quantity 0
    expect(handlePdu(image, pdu(0x03, 0, 0, 0, 126))).toEqual(pdu(0x83, 0x03)); // > 125 registers
    expect(handlePdu(image, pdu(0x01, 0, 0, 0x07, 0xd1))).toEqual(pdu(0x81, 0x03)); // > 2000 bits
    expect(handlePdu(image, pdu(0x03, 0, 0, 0))).toEqual(pdu(0x83, 0x03)); // truncated request
    expect(handlePdu(image, pdu(0x03, 0, 6, 0, 3))).toEqual(pdu(0x83, 0x02)); // 6..8 past the table
    expect(handlePdu(image, pdu(0x03, 0xff, 0xff, 0, 1))).toEqual(pdu(0x83, 0x02));
    expect(handlePdu(image, pdu(0x02, 0, 0, 0, 4))).toEqual(pdu(0x82, 0x02));
  });
});

describe('register encodings', () => {
  const regs = () => new Uint16Array(4);

  it('writes 32-bit values in the four word orders', () => {
    // 1.5f = 0x3FC00000, A=3F B=C0 C=00 D=00
    const cases = {
      ABCD: [0x3fc0, 0x0000],
      CDAB: [0x0000, 0x3fc0],
      BADC: [0xc03f, 0x0000],
      DCBA: [0x0000, 0xc03f],
    };
    for (const [order, words] of Object.entries(cases)) {
      const r = regs();
      putFloat32(r, 1, 1.5, order as keyof typeof cases);
      expect([...r.subarray(1, 3)]).toEqual(words);
    }
    const r = regs();
    putUint32(r, 0, 0x12345678, 'CDAB');
    expect([...r.subarray(0, 2)]).toEqual([0x5678, 0x1234]);
    putUint32(r, 0, 2 ** 32 + 5, 'ABCD'); // counters wrap
    expect([...r.subarray(0, 2)]).toEqual([0, 5]);
  });

  it('scales and saturates 16-bit values and packs ASCII high byte first', () => {
    const r = regs();
    putInt16Scaled(r, 0, -12.34, 10);
    expect(r[0]).toBe(0x10000 - 123);
    putInt16Scaled(r, 1, 5000, 10);
    expect(r[1]).toBe(32767);
    putUint16(r, 2, -1);
    expect(r[2]).toBe(0);
    const s = new Uint16Array(3);
    putString(s, 0, 3, 'LOT');
    expect([...s]).toEqual([0x4c4f, 0x5400, 0]);
    putString(s, 0, 3, 'ABCDEFGH');
    expect([...s]).toEqual([0x4142, 0x4344, 0x4546]); // cut at 3 registers = 6 characters
  });
});

describe('MBAP framing', () => {
  const request = (tid: number, unit: number, ...body: number[]) =>
    Buffer.from([tid >> 8, tid & 0xff, 0, 0, 0, body.length + 1, unit, ...body]);

  it('cuts requests split across chunks and joined in one chunk', () => {
    const d = new MbapDecoder();
    const a = request(1, 1, 3, 0, 0, 0, 2);
    const b = request(2, 2, 4, 0, 1, 0, 1);
    expect(d.push(a.subarray(0, 5))).toEqual([]);
    const both = d.push(Buffer.concat([a.subarray(5), b]));
    expect(both.map((r) => [r.transactionId, r.unitId, [...r.pdu]])).toEqual([
      [1, 1, [3, 0, 0, 0, 2]],
      [2, 2, [4, 0, 1, 0, 1]],
    ]);
    expect([...encodeTcpResponse(2, 2, pdu(4, 2, 0, 9))]).toEqual([0, 2, 0, 0, 0, 5, 2, 4, 2, 0, 9]);
  });

  it('rejects a foreign protocol id or an impossible length', () => {
    expect(() => new MbapDecoder().push(Buffer.from([0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1]))).toThrow(
      MbapFramingError,
    );
    expect(() => new MbapDecoder().push(Buffer.from([0, 1, 0, 0, 1, 0, 1, 3]))).toThrow(/outside 2..254/);
    expect(() => new MbapDecoder().push(Buffer.from([0, 1, 0, 0, 0, 1, 1]))).toThrow(/outside 2..254/);
  });
});

describe('RTU framing', () => {
  it('computes the Modbus CRC (known vector)', () => {
    // Read 10 holding registers from unit 1: 01 03 00 00 00 0A C5 CD
    expect([...encodeRtuFrame(1, pdu(3, 0, 0, 0, 10))]).toEqual([1, 3, 0, 0, 0, 10, 0xc5, 0xcd]);
    expect(crc16(Buffer.from([1, 3, 0, 0, 0, 10, 0xc5, 0xcd]))).toBe(0); // a frame with its CRC checks to 0
  });

  it('cuts frames by their length, drops bad CRCs, and frames unknown functions by silence', () => {
    const f = new RtuFramer();
    const read = encodeRtuFrame(2, pdu(4, 0, 0, 0, 6));
    expect(f.push(read.subarray(0, 3))).toEqual([]);
    expect(f.push(read.subarray(3)).map((r) => r.unitId)).toEqual([2]);
    const bad = Buffer.from(read);
    bad[7]! ^= 0xff;
    expect(f.push(bad)).toEqual([]);
    expect(f.crcErrors).toBe(1);
    const write = encodeRtuFrame(1, pdu(0x10, 0, 0, 0, 1, 2, 0xaa, 0xbb));
    expect(f.push(write).map((r) => [...r.pdu])).toEqual([[0x10, 0, 0, 0, 1, 2, 0xaa, 0xbb]]);
    const odd = encodeRtuFrame(1, pdu(0x11));
    expect(f.push(odd)).toEqual([]);
    expect(f.pending).toBe(odd.length);
    expect(f.flushOnSilence().map((r) => [...r.pdu])).toEqual([[0x11]]);
    expect(f.push(Buffer.alloc(300, 0x41))).toEqual([]);
    expect(f.overflows).toBe(1);
    expect(f.pending).toBe(0);
  });
});
