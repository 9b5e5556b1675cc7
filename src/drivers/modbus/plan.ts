/**
 * Request planning for Modbus, as pure functions (Telegraf's plugins/inputs/modbus/request.go is the
 * model): group the tags of one unit and one area into the fewest read requests. Tags that are
 * contiguous, overlapping or separated by at most `maxGap` unused registers (or bits) share a request
 * as long as it stays within the per-request maximum. Greedy left-to-right is optimal here: every
 * request extends as far as the limits allow, so no plan can use fewer requests.
 *
 * @example
 *   const requests = planRequests(device.tags, { maxRegistersPerRequest: 125, maxBitsPerRequest: 2000,
 *     maxGapRegisters: 8, maxGapBits: 32 });
 */
import { modbusBitsPerRequestMax, modbusRegistersPerRequestMax } from '../bounds.ts';

export type ModbusArea = 'coil' | 'discrete' | 'holding' | 'input';
export type ModbusType = 'bit' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64' | 'string';

/** The fields of a tag that planning needs (a device-map tag has them all). */
export interface PlanTag {
  unitId: number;
  area: ModbusArea;
  address: number;
  type: ModbusType;
  /** Characters, for strings. */
  length?: number | undefined;
}

export interface PlanLimits {
  maxRegistersPerRequest: number;
  maxBitsPerRequest: number;
  maxGapRegisters: number;
  maxGapBits: number;
}

export interface ReadRequest {
  unitId: number;
  area: ModbusArea;
  functionCode: 1 | 2 | 3 | 4;
  address: number;
  /** Registers (FC 3/4) or bits (FC 1/2). */
  count: number;
  /** Indices of the tags this request covers, into the array given to planRequests, by address. */
  tags: number[];
}

export const functionCodes: Record<ModbusArea, 1 | 2 | 3 | 4> = {
  coil: 1,
  discrete: 2,
  holding: 3,
  input: 4,
};
const areaOrder: Record<ModbusArea, number> = { coil: 0, discrete: 1, holding: 2, input: 3 };

export function isBitArea(area: ModbusArea): boolean {
  return area === 'coil' || area === 'discrete';
}

/** How many registers (or bits) a tag occupies. */
export function tagSize(tag: Pick<PlanTag, 'type' | 'length'>): number {
  switch (tag.type) {
    case 'bit':
    case 'int16':
    case 'uint16':
      return 1;
    case 'int32':
    case 'uint32':
    case 'float32':
      return 2;
    case 'float64':
      return 4;
    case 'string':
      return Math.ceil((tag.length ?? 0) / 2);
  }
}

/** Problems that make a tag unplannable under the limits (a tag bigger than one request, say). */
export function planProblems(
  tags: readonly PlanTag[],
  limits: PlanLimits,
): { index: number; message: string }[] {
  const problems: { index: number; message: string }[] = [];
  tags.forEach((tag, index) => {
    const size = tagSize(tag);
    const bit = isBitArea(tag.area);
    const max = bit ? limits.maxBitsPerRequest : limits.maxRegistersPerRequest;
    if (size > max) {
      problems.push({
        index,
        message: `tag needs ${size} registers but one request may read at most ${max} (maxRegistersPerRequest)`,
      });
    }
    if (tag.address + size > 65_536) {
      problems.push({ index, message: `tag runs past the last address (65535): ${tag.address} + ${size}` });
    }
  });
  return problems;
}

/**
 * Groups tags into read requests. Output order: by unit, then area (coil, discrete, holding,
 * input), then address. Throws on tags that cannot be planned (check {@link planProblems} first).
 */
export function planRequests(tags: readonly PlanTag[], limits: PlanLimits): ReadRequest[] {
  const maxRegisters = Math.min(limits.maxRegistersPerRequest, modbusRegistersPerRequestMax);
  const maxBits = Math.min(limits.maxBitsPerRequest, modbusBitsPerRequestMax);
  const problems = planProblems(tags, {
    ...limits,
    maxRegistersPerRequest: maxRegisters,
    maxBitsPerRequest: maxBits,
  });
  if (problems.length > 0) throw new RangeError(`tags[${problems[0]!.index}]: ${problems[0]!.message}`);

  const order = tags.map((_, i) => i);
  order.sort((a, b) => {
    const x = tags[a]!;
    const y = tags[b]!;
    return (
      x.unitId - y.unitId ||
      areaOrder[x.area] - areaOrder[y.area] ||
      x.address - y.address ||
      tagSize(y) - tagSize(x) ||
      a - b
    );
  });

  const requests: ReadRequest[] = [];
  let current: ReadRequest | null = null;
  let end = 0; // one past the last register (bit) covered by `current`
  for (const i of order) {
    const tag = tags[i]!;
    const size = tagSize(tag);
    const bit = isBitArea(tag.area);
    const max = bit ? maxBits : maxRegisters;
    const gap = bit ? limits.maxGapBits : limits.maxGapRegisters;
    const tagEnd = tag.address + size;
    if (
      current &&
      current.unitId === tag.unitId &&
      current.area === tag.area &&
      tag.address - end <= gap &&
      Math.max(end, tagEnd) - current.address <= max
    ) {
      current.tags.push(i);
      end = Math.max(end, tagEnd);
      current.count = end - current.address;
      continue;
    }
    current = {
      unitId: tag.unitId,
      area: tag.area,
      functionCode: functionCodes[tag.area],
      address: tag.address,
      count: size,
      tags: [i],
    };
    end = tagEnd;
    requests.push(current);
  }
  return requests;
}
