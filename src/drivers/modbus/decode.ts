/**
 * Decoding Modbus register and bit images into tag values, as pure functions.
 *
 * Byte order names the order of the bytes of a value as they arrive on the wire, where A is the most
 * significant byte (for 64-bit values read ABCD as ABCDEFGH, and so on):
 *   - ABCD: big-endian, most significant word first (the Modbus default).
 *   - BADC: bytes swapped inside each word, most significant word first.
 *   - CDAB: words in reverse order (least significant word first), bytes in order ("word swap").
 *   - DCBA: fully little-endian.
 * 16-bit values only see the byte swap: BADC and DCBA swap, ABCD and CDAB do not.
 * Strings take two characters per register, high byte first (ABCD/CDAB) or low byte first
 * (BADC/DCBA); they end at the first NUL and trailing spaces are dropped.
 * Scale and offset apply to numeric types: value = raw × scale + offset. A scale whose inverse is an
 * integer (0.1, 0.01 …) divides instead, so 253 × 0.1 gives 25.3 and 6540 × 0.01 − 40 gives 25.4, without binary noise.
 * A float32 is first written as the shortest decimal that reads back as the same float32 (270.2, not
 * the 270.20001220703125 its widening to a double shows).
 */
import { float32Shortest } from '../common/float32.ts';
import { type ModbusType, tagSize } from './plan.ts';

export type ByteOrder = 'ABCD' | 'BADC' | 'CDAB' | 'DCBA';

export interface DecodeTag {
  type: ModbusType;
  byteOrder: ByteOrder;
  length?: number | undefined;
  scale: number;
  offset: number;
}

/** Precomputed per tag once, so decoding does no work that depends only on the configuration. */
export interface Decoder {
  words: number;
  decode(data: Uint8Array, wordOffset: number): number | string;
}

const scratch = Buffer.alloc(8);

/** Copies `words` registers from `data` into the scratch buffer in big-endian (ABCD) order. */
function reorder(data: Uint8Array, byteStart: number, words: number, order: ByteOrder): Buffer {
  const swapBytes = order === 'BADC' || order === 'DCBA';
  const reverseWords = order === 'CDAB' || order === 'DCBA';
  for (let w = 0; w < words; w++) {
    const src = byteStart + 2 * (reverseWords ? words - 1 - w : w);
    const hi = data[src]!;
    const lo = data[src + 1]!;
    scratch[2 * w] = swapBytes ? lo : hi;
    scratch[2 * w + 1] = swapBytes ? hi : lo;
  }
  return scratch;
}

function scaler(scale: number, offset: number): (raw: number) => number {
  if (scale === 1 && offset === 0) return (raw) => raw;
  const inverse = 1 / scale;
  const divisor = Math.round(inverse);
  if (divisor !== 0 && Math.abs(inverse - divisor) < 1e-9 * Math.abs(inverse)) {
    // (raw + offset/scale) / divisor keeps decimals exact where raw / divisor + offset would not.
    const shifted = offset * divisor;
    return offset === 0 ? (raw) => raw / divisor : (raw) => (raw + shifted) / divisor;
  }
  return (raw) => raw * scale + offset;
}

/** Builds the decoder of a register tag (every type but `bit`). */
export function registerDecoder(tag: DecodeTag): Decoder {
  const order = tag.byteOrder;
  const scaled = scaler(tag.scale, tag.offset);
  const words = tagSize(tag);
  switch (tag.type) {
    case 'int16':
      return { words, decode: (d, o) => scaled(reorder(d, 2 * o, 1, order).readInt16BE(0)) };
    case 'uint16':
      return { words, decode: (d, o) => scaled(reorder(d, 2 * o, 1, order).readUInt16BE(0)) };
    case 'int32':
      return { words, decode: (d, o) => scaled(reorder(d, 2 * o, 2, order).readInt32BE(0)) };
    case 'uint32':
      return { words, decode: (d, o) => scaled(reorder(d, 2 * o, 2, order).readUInt32BE(0)) };
    case 'float32':
      // The shortest decimal of the float32 (270.2, not 270.20001220703125), then scale and offset.
      return {
        words,
        decode: (d, o) => scaled(float32Shortest(reorder(d, 2 * o, 2, order).readFloatBE(0))),
      };
    case 'float64':
      return { words, decode: (d, o) => scaled(reorder(d, 2 * o, 4, order).readDoubleBE(0)) };
    case 'string': {
      const chars = tag.length ?? 0;
      const lowFirst = order === 'BADC' || order === 'DCBA';
      return { words, decode: (d, o) => decodeString(d, 2 * o, chars, lowFirst) };
    }
    case 'bit':
      throw new TypeError('bit tags are decoded with decodeBit');
  }
}

function decodeString(data: Uint8Array, byteStart: number, chars: number, lowFirst: boolean): string {
  let out = '';
  for (let i = 0; i < chars; i++) {
    const pos = byteStart + (lowFirst ? i ^ 1 : i);
    const c = data[pos]!;
    if (c === 0) break;
    out += String.fromCharCode(c);
  }
  return out.trimEnd();
}

/** Bit `index` of a coil/discrete-input response (LSB of the first byte is the first bit). */
export function decodeBit(data: Uint8Array, index: number): boolean {
  return ((data[index >> 3]! >> (index & 7)) & 1) === 1;
}

/**
 * Encodes a value into registers in the tag's byte order (the inverse of decoding, without scale):
 * used by tests and the benchmark to build register images.
 */
export function encodeRegisters(value: number | string, tag: Omit<DecodeTag, 'scale' | 'offset'>): number[] {
  const words = tagSize(tag);
  const be = Buffer.alloc(words * 2);
  switch (tag.type) {
    case 'int16':
      be.writeInt16BE(Number(value));
      break;
    case 'uint16':
      be.writeUInt16BE(Number(value));
      break;
    case 'int32':
      be.writeInt32BE(Number(value));
      break;
    case 'uint32':
      be.writeUInt32BE(Number(value));
      break;
    case 'float32':
      be.writeFloatBE(Number(value));
      break;
    case 'float64':
      be.writeDoubleBE(Number(value));
      break;
    case 'string': {
      const s = String(value);
      for (let i = 0; i < Math.min(s.length, tag.length ?? 0); i++) be[i] = s.charCodeAt(i) & 0xff;
      break;
    }
    case 'bit':
      throw new TypeError('bits are not registers');
  }
  // Apply the byte order: it is its own inverse for every order.
  const wire = Buffer.alloc(words * 2);
  if (tag.type === 'string') {
    const swap = tag.byteOrder === 'BADC' || tag.byteOrder === 'DCBA';
    for (let i = 0; i < wire.length; i++) wire[i] = be[swap ? i ^ 1 : i]!;
  } else {
    reorder(be, 0, words, tag.byteOrder).copy(wire, 0, 0, words * 2);
  }
  const out: number[] = [];
  for (let w = 0; w < words; w++) out.push(wire.readUInt16BE(2 * w));
  return out;
}
