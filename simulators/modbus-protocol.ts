/**
 * Pure Modbus server-side protocol code (no sockets): the PDU handler for the read functions, MBAP
 * framing for Modbus TCP, RTU framing with CRC-16 for serial lines, and register encodings.
 * Written here rather than taken from modbus-serial's servers because those cannot silence a single
 * unit, accept RTU frames with a bad CRC, and frame serial input only by a 30 ms gap.
 *
 * References: "MODBUS Application Protocol Specification V1.1b3" (function codes, exception codes,
 * quantity limits, the order of request checks) and "MODBUS over Serial Line V1.02" (RTU framing, CRC).
 *
 * @example
 *   const image = createImage({ holding: 64, input: 16, coils: 16, discrete: 16 });
 *   handlePdu(image, Buffer.from([0x03, 0x00, 0x00, 0x00, 0x02])); // => 03 04 hi lo hi lo
 */

export const FunctionCode = {
  ReadCoils: 0x01,
  ReadDiscreteInputs: 0x02,
  ReadHoldingRegisters: 0x03,
  ReadInputRegisters: 0x04,
} as const;

export const ExceptionCode = {
  IllegalFunction: 0x01,
  IllegalDataAddress: 0x02,
  IllegalDataValue: 0x03,
  ServerDeviceFailure: 0x04,
  ServerDeviceBusy: 0x06,
  GatewayPathUnavailable: 0x0a,
  GatewayTargetFailedToRespond: 0x0b,
} as const;

/** Spec limits: one read returns at most 125 registers or 2000 bits (so a PDU fits in 253 bytes). */
export const READ_REGISTERS_MAX = 125;
export const READ_BITS_MAX = 2000;
/** Largest PDU (function code + data) and the largest ADUs that carry it. */
export const PDU_MAX_BYTES = 253;
export const MBAP_HEADER_BYTES = 7;
export const TCP_ADU_MAX_BYTES = MBAP_HEADER_BYTES + PDU_MAX_BYTES - 1; // the unit id is in the header
export const RTU_ADU_MAX_BYTES = 1 + PDU_MAX_BYTES + 2; // unit + PDU + CRC

/** The four data tables of one unit (0-based addresses). Bits are stored one per byte, 0 or 1. */
export interface UnitImage {
  holding: Uint16Array;
  input: Uint16Array;
  coils: Uint8Array;
  discrete: Uint8Array;
}

export function createImage(sizes: {
  holding: number;
  input: number;
  coils: number;
  discrete: number;
}): UnitImage {
  return {
    holding: new Uint16Array(sizes.holding),
    input: new Uint16Array(sizes.input),
    coils: new Uint8Array(sizes.coils),
    discrete: new Uint8Array(sizes.discrete),
  };
}

export function exceptionPdu(functionCode: number, code: number): Buffer {
  return Buffer.from([(functionCode | 0x80) & 0xff, code]);
}

/**
 * Answers one request PDU against a unit's image. Checks follow the specification's order: function
 * supported (else 01), quantity and PDU length valid (else 03), address range inside the table (else 02).
 */
export function handlePdu(image: UnitImage, pdu: Uint8Array): Buffer {
  const fc = pdu[0]!;
  const bits =
    fc === FunctionCode.ReadCoils
      ? image.coils
      : fc === FunctionCode.ReadDiscreteInputs
        ? image.discrete
        : null;
  const regs =
    fc === FunctionCode.ReadHoldingRegisters
      ? image.holding
      : fc === FunctionCode.ReadInputRegisters
        ? image.input
        : null;
  if (!bits && !regs) return exceptionPdu(fc, ExceptionCode.IllegalFunction);
  if (pdu.length !== 5) return exceptionPdu(fc, ExceptionCode.IllegalDataValue);
  const address = (pdu[1]! << 8) | pdu[2]!;
  const quantity = (pdu[3]! << 8) | pdu[4]!;
  const max = bits ? READ_BITS_MAX : READ_REGISTERS_MAX;
  if (quantity < 1 || quantity > max) return exceptionPdu(fc, ExceptionCode.IllegalDataValue);
  const table = (bits ?? regs)!;
  if (address + quantity > table.length) return exceptionPdu(fc, ExceptionCode.IllegalDataAddress);
  if (bits) {
    const byteCount = Math.ceil(quantity / 8);
    const out = Buffer.alloc(2 + byteCount);
    out[0] = fc;
    out[1] = byteCount;
    for (let i = 0; i < quantity; i++) if (bits[address + i]) out[2 + (i >> 3)]! |= 1 << (i & 7);
    return out;
  }
  const out = Buffer.alloc(2 + 2 * quantity);
  out[0] = fc;
  out[1] = 2 * quantity;
  for (let i = 0; i < quantity; i++) out.writeUInt16BE(regs![address + i]!, 2 + 2 * i);
  return out;
}

// ---- Modbus TCP (MBAP) ------------------------------------------------------------------------------

export interface TcpRequest {
  transactionId: number;
  unitId: number;
  pdu: Buffer;
}

export class MbapFramingError extends Error {
  override readonly name = 'MbapFramingError';
}

/**
 * Incremental MBAP decoder for one connection. Holds at most one partial ADU (<= 260 bytes) between
 * calls. A header with a protocol id other than 0 or a length outside 2..254 means the stream is not
 * Modbus or lost sync: it throws MbapFramingError and the caller closes the connection, as devices do.
 */
export class MbapDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): TcpRequest[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: TcpRequest[] = [];
    while (this.buf.length >= MBAP_HEADER_BYTES) {
      const protocolId = this.buf.readUInt16BE(2);
      const length = this.buf.readUInt16BE(4); // unit id + PDU
      if (protocolId !== 0) throw new MbapFramingError(`protocol id ${protocolId}, expected 0`);
      if (length < 2 || length > PDU_MAX_BYTES + 1)
        throw new MbapFramingError(`MBAP length ${length} outside 2..254`);
      const total = 6 + length;
      if (this.buf.length < total) break;
      out.push({
        transactionId: this.buf.readUInt16BE(0),
        unitId: this.buf[6]!,
        pdu: Buffer.from(this.buf.subarray(7, total)),
      });
      this.buf = this.buf.subarray(total);
    }
    return out;
  }
}

export function encodeTcpResponse(transactionId: number, unitId: number, pdu: Buffer): Buffer {
  const out = Buffer.alloc(MBAP_HEADER_BYTES + pdu.length);
  out.writeUInt16BE(transactionId, 0);
  out.writeUInt16BE(0, 2);
  out.writeUInt16BE(pdu.length + 1, 4);
  out[6] = unitId;
  pdu.copy(out, 7);
  return out;
}

// ---- Modbus RTU -------------------------------------------------------------------------------------

/** CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF); transmitted low byte first. */
export function crc16(data: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of data) {
    crc ^= byte;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

export function encodeRtuFrame(unitId: number, pdu: Buffer): Buffer {
  const out = Buffer.alloc(1 + pdu.length + 2);
  out[0] = unitId;
  pdu.copy(out, 1);
  out.writeUInt16LE(crc16(out.subarray(0, out.length - 2)), out.length - 2);
  return out;
}

export interface RtuRequest {
  unitId: number;
  pdu: Buffer;
}

/**
 * Length of a complete request frame for the function codes whose request length is known
 * (reads and writes), or null when only the end-of-frame silence can tell.
 */
function rtuRequestLength(buf: Buffer): number | null {
  if (buf.length < 2) return null;
  const fc = buf[1]!;
  if (fc >= 0x01 && fc <= 0x06) return 8; // unit, fc, 2 x uint16, crc
  if (fc === 0x0f || fc === 0x10) return buf.length >= 7 ? 9 + buf[6]! : null; // ..., byte count, data, crc
  return null;
}

/**
 * RTU request framer. Standard RTU frames by silence (3.5 character times); on a pseudo-terminal bytes
 * arrive in bursts with no meaningful timing, so a frame is cut as soon as its known length is in
 * (reads and writes), and by `silenceMs` without bytes otherwise. Frames with a bad CRC are dropped
 * silently, as the serial line specification requires. Holds at most RTU_ADU_MAX_BYTES; more without
 * a frame boundary is noise and is discarded.
 */
export class RtuFramer {
  private buf: Buffer = Buffer.alloc(0);
  /** Frames dropped for a bad CRC or overflow (for tests and status lines). */
  crcErrors = 0;
  overflows = 0;

  /** Feeds bytes; returns the complete frames. Call `flushOnSilence()` when the line has been quiet. */
  push(chunk: Buffer): RtuRequest[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: RtuRequest[] = [];
    for (;;) {
      const len = rtuRequestLength(this.buf);
      if (len === null || this.buf.length < len) break;
      this.take(this.buf.subarray(0, len), out);
      this.buf = this.buf.subarray(len);
    }
    if (this.buf.length > RTU_ADU_MAX_BYTES) {
      this.overflows++;
      this.buf = Buffer.alloc(0);
    }
    return out;
  }

  /** The line went silent: whatever is buffered is one frame (or garbage). */
  flushOnSilence(): RtuRequest[] {
    const out: RtuRequest[] = [];
    if (this.buf.length > 0) this.take(this.buf, out);
    this.buf = Buffer.alloc(0);
    return out;
  }

  get pending(): number {
    return this.buf.length;
  }

  private take(frame: Buffer, out: RtuRequest[]): void {
    if (
      frame.length < 4 ||
      crc16(frame.subarray(0, frame.length - 2)) !== frame.readUInt16LE(frame.length - 2)
    ) {
      this.crcErrors++;
      return;
    }
    out.push({ unitId: frame[0]!, pdu: Buffer.from(frame.subarray(1, frame.length - 2)) });
  }
}

// ---- Register encodings -----------------------------------------------------------------------------

/**
 * Order of the four bytes of a 32-bit value across two registers, A being the most significant byte:
 * ABCD = big-endian (high word first), CDAB = word-swapped, BADC = byte-swapped, DCBA = little-endian.
 */
export type WordOrder = 'ABCD' | 'CDAB' | 'BADC' | 'DCBA';

const ORDER_INDEX: Record<WordOrder, readonly [number, number, number, number]> = {
  ABCD: [0, 1, 2, 3],
  CDAB: [2, 3, 0, 1],
  BADC: [1, 0, 3, 2],
  DCBA: [3, 2, 1, 0],
};

/** Writes four big-endian bytes (ABCD) into two registers in the given order. */
function put32(regs: Uint16Array, at: number, abcd: Buffer, order: WordOrder): void {
  const [i0, i1, i2, i3] = ORDER_INDEX[order];
  regs[at] = (abcd[i0]! << 8) | abcd[i1]!;
  regs[at + 1] = (abcd[i2]! << 8) | abcd[i3]!;
}

export function putFloat32(regs: Uint16Array, at: number, value: number, order: WordOrder): void {
  const b = Buffer.alloc(4);
  b.writeFloatBE(value, 0);
  put32(regs, at, b, order);
}

/** Counters wrap modulo 2^32 like a PLC's DINT/UDINT counter. */
export function putUint32(regs: Uint16Array, at: number, value: number, order: WordOrder): void {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(((value % 4294967296) + 4294967296) % 4294967296, 0);
  put32(regs, at, b, order);
}

/** Saturates to 0..65535. */
export function putUint16(regs: Uint16Array, at: number, value: number): void {
  regs[at] = Math.min(0xffff, Math.max(0, Math.round(value)));
}

/** value x scale, rounded, saturated to -32768..32767, stored as two's complement. */
export function putInt16Scaled(regs: Uint16Array, at: number, value: number, scale: number): void {
  const v = Math.min(32767, Math.max(-32768, Math.round(value * scale)));
  regs[at] = v & 0xffff;
}

/**
 * ASCII, two characters per register, first character in the high byte, padded with NUL (0x00);
 * longer text is cut at registers x 2 characters, non-ASCII characters become '?'.
 */
export function putString(regs: Uint16Array, at: number, registers: number, text: string): void {
  for (let i = 0; i < registers; i++) {
    const hi = charAt(text, 2 * i);
    const lo = charAt(text, 2 * i + 1);
    regs[at + i] = (hi << 8) | lo;
  }
}

function charAt(text: string, i: number): number {
  if (i >= text.length) return 0;
  const c = text.charCodeAt(i);
  return c < 0x80 ? c : 0x3f;
}
