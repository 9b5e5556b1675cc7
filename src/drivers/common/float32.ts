/**
 * Single-precision values as numbers people recognise. A float32 read from a device (a Modbus
 * `float32`, an OPC UA `Float`) widened to a JavaScript double shows its binary tail: 1211.4 becomes
 * 1211.4000244140625. That tail was never measured; it is an artefact of the widening. Stored, signed
 * and shown, it would also make two gateways reading the same register disagree with the HMI.
 *
 * @example
 *   float32Shortest(Math.fround(270.2)); // 270.2
 */

/**
 * The shortest decimal (as a double) that reads back as the same float32: at most 9 significant
 * digits always suffice (IEEE 754). NaN, infinities and values that are not float32 pass unchanged.
 */
export function float32Shortest(x: number): number {
  if (!Number.isFinite(x) || Math.fround(x) !== x) return x;
  for (let digits = 1; digits < 9; digits++) {
    const y = Number(x.toPrecision(digits));
    if (Math.fround(y) === x) return y;
  }
  return Number(x.toPrecision(9));
}
