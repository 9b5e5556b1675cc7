/**
 * Register maps of the simulated Modbus PLC: one per machine kind (press, oven). Each entry says where
 * a value lives, how it is encoded and where it comes from, so encoding, documentation and tests share
 * one source. Addresses are 0-based protocol addresses (mbpoll and most HMI tools show them + 1).
 *
 * The maps are mirrored as tables in docs/simulators.md; a test checks that every entry here appears
 * there with the same address, type and word order.
 */

import {
  putFloat32,
  putInt16Scaled,
  putString,
  putUint16,
  putUint32,
  type UnitImage,
  type WordOrder,
} from './modbus-protocol.ts';
import type { MachineState, OvenStatus, PressStatus } from './scenario.ts';

export type RegisterTable = 'holding' | 'input';
export type BitTable = 'coils' | 'discrete';

interface RegisterBase<S> {
  table: RegisterTable;
  address: number;
  name: string;
  unit?: string;
  description: string;
  read: (s: S) => number | string;
}

export type RegisterField<S> = RegisterBase<S> &
  (
    | { type: 'string'; registers: number }
    | { type: 'uint16' }
    | { type: 'int16'; scale: number }
    | { type: 'uint32'; order: WordOrder }
    | { type: 'float32'; order: WordOrder }
  );

export interface BitField<S> {
  table: BitTable;
  address: number;
  name: string;
  description: string;
  read: (s: S) => boolean;
}

export interface UnitMap<S> {
  kind: 'press' | 'oven';
  /** Table sizes: reads inside a table but outside the listed fields return 0; beyond it, exception 02. */
  sizes: { holding: number; input: number; coils: number; discrete: number };
  registers: readonly RegisterField<S>[];
  bits: readonly BitField<S>[];
}

/** State codes in the `state` register. */
export const STATE_CODE: Record<MachineState, number> = { Idle: 0, Running: 1, Down: 2 };

const ID_REGISTERS = 10; // 20 ASCII characters

export const PRESS_MAP: UnitMap<PressStatus> = {
  kind: 'press',
  sizes: { holding: 64, input: 16, coils: 16, discrete: 16 },
  // biome-ignore format: one entry per line reads like the PLC's register list
  registers: [
    { table: 'holding', address: 0, name: 'lot_id', type: 'string', registers: ID_REGISTERS, description: 'Current lot id', read: (s) => s.lot ?? '' },
    { table: 'holding', address: 10, name: 'order_id', type: 'string', registers: ID_REGISTERS, description: 'Order of the current lot', read: (s) => s.order ?? '' },
    { table: 'holding', address: 20, name: 'product', type: 'string', registers: ID_REGISTERS, description: 'Product of the current lot', read: (s) => s.product ?? '' },
    { table: 'holding', address: 30, name: 'parts_total', type: 'uint32', order: 'ABCD', description: 'Lifetime part counter (wraps at 2^32)', read: (s) => s.totalParts },
    { table: 'holding', address: 32, name: 'parts_in_lot', type: 'uint16', description: 'Parts finished in the current lot (0 at lot start)', read: (s) => s.partCount },
    { table: 'holding', address: 33, name: 'parts_planned', type: 'uint16', description: 'Parts planned for the current lot', read: (s) => s.plannedParts },
    { table: 'holding', address: 34, name: 'state', type: 'uint16', description: '0 Idle, 1 Running, 2 Down', read: (s) => STATE_CODE[s.state] },
    { table: 'holding', address: 35, name: 'alarm_code', type: 'uint16', description: 'Active alarm code, 0 when none is active', read: (s) => (s.alarm.active ? s.alarm.code : 0) },
    { table: 'holding', address: 36, name: 'last_peak_force', type: 'float32', order: 'CDAB', unit: 'kN', description: 'Peak force of the last part (0 before the first)', read: (s) => s.lastPeakForceKn ?? 0 },
    { table: 'input', address: 0, name: 'hydraulic_pressure', type: 'float32', order: 'ABCD', unit: 'bar', description: 'Hydraulic pressure', read: (s) => s.hydraulicPressureBar },
    { table: 'input', address: 2, name: 'oil_temperature', type: 'float32', order: 'BADC', unit: 'degC', description: 'Hydraulic oil temperature', read: (s) => s.oilTempC },
    { table: 'input', address: 4, name: 'hydraulic_pressure_x10', type: 'int16', scale: 10, unit: 'bar', description: 'Hydraulic pressure x 10', read: (s) => s.hydraulicPressureBar },
    { table: 'input', address: 5, name: 'oil_temperature_x10', type: 'int16', scale: 10, unit: 'degC', description: 'Oil temperature x 10', read: (s) => s.oilTempC },
  ],
  // biome-ignore format: one entry per line reads like the PLC's register list
  bits: [
    { table: 'coils', address: 0, name: 'pump_on', description: 'Hydraulic pump motor output', read: (s) => s.pumpOn },
    { table: 'coils', address: 1, name: 'ram_down', description: 'Ram-down valve output (during the stroke)', read: (s) => s.ramDown },
    { table: 'coils', address: 2, name: 'alarm_lamp', description: 'Red stack light: an alarm is active', read: (s) => s.alarm.active },
    { table: 'coils', address: 3, name: 'cycle_complete', description: 'Set when a part completes, reset when the next cycle starts', read: (s) => s.cycleComplete },
    { table: 'discrete', address: 0, name: 'running', description: 'State is Running', read: (s) => s.state === 'Running' },
    { table: 'discrete', address: 1, name: 'down', description: 'State is Down', read: (s) => s.state === 'Down' },
    { table: 'discrete', address: 2, name: 'ram_top', description: 'Ram at top dead centre (not in a stroke)', read: (s) => !s.ramDown },
    { table: 'discrete', address: 3, name: 'pressure_switch', description: 'Hydraulic pressure above 100 bar', read: (s) => s.hydraulicPressureBar > 100 },
  ],
};

export const OVEN_MAP: UnitMap<OvenStatus> = {
  kind: 'oven',
  sizes: { holding: 64, input: 16, coils: 16, discrete: 16 },
  // biome-ignore format: one entry per line reads like the PLC's register list
  registers: [
    { table: 'holding', address: 0, name: 'lot_id', type: 'string', registers: ID_REGISTERS, description: 'Lot in the oven (empty when unloaded)', read: (s) => s.lot ?? '' },
    { table: 'holding', address: 10, name: 'order_id', type: 'string', registers: ID_REGISTERS, description: 'Order of the lot in the oven', read: (s) => s.order ?? '' },
    { table: 'holding', address: 20, name: 'product', type: 'string', registers: ID_REGISTERS, description: 'Product of the lot in the oven', read: (s) => s.product ?? '' },
    { table: 'holding', address: 30, name: 'state', type: 'uint16', description: '0 Idle, 1 Running, 2 Down', read: (s) => STATE_CODE[s.state] },
    { table: 'holding', address: 31, name: 'alarm_code', type: 'uint16', description: 'Active alarm code, 0 when none is active', read: (s) => (s.alarm.active ? s.alarm.code : 0) },
    { table: 'holding', address: 32, name: 'setpoint', type: 'float32', order: 'ABCD', unit: 'degC', description: 'Soak setpoint', read: (s) => s.setpointC },
    { table: 'holding', address: 34, name: 'batches_total', type: 'uint32', order: 'CDAB', description: 'Lifetime finished batches (wraps at 2^32)', read: (s) => s.totalParts },
    { table: 'holding', address: 36, name: 'parts_in_batch', type: 'uint16', description: 'Parts in the loaded batch (0 when unloaded)', read: (s) => s.plannedParts },
    { table: 'input', address: 0, name: 'zone1_temperature', type: 'float32', order: 'CDAB', unit: 'degC', description: 'Zone 1 temperature', read: (s) => s.zoneTempsC[0] },
    { table: 'input', address: 2, name: 'zone2_temperature', type: 'float32', order: 'CDAB', unit: 'degC', description: 'Zone 2 temperature', read: (s) => s.zoneTempsC[1] },
    { table: 'input', address: 4, name: 'zone3_temperature', type: 'float32', order: 'CDAB', unit: 'degC', description: 'Zone 3 temperature', read: (s) => s.zoneTempsC[2] },
    { table: 'input', address: 6, name: 'zone1_temperature_x10', type: 'int16', scale: 10, unit: 'degC', description: 'Zone 1 temperature x 10', read: (s) => s.zoneTempsC[0] },
    { table: 'input', address: 7, name: 'zone2_temperature_x10', type: 'int16', scale: 10, unit: 'degC', description: 'Zone 2 temperature x 10', read: (s) => s.zoneTempsC[1] },
    { table: 'input', address: 8, name: 'zone3_temperature_x10', type: 'int16', scale: 10, unit: 'degC', description: 'Zone 3 temperature x 10', read: (s) => s.zoneTempsC[2] },
    { table: 'input', address: 9, name: 'chamber_temperature', type: 'float32', order: 'DCBA', unit: 'degC', description: 'Mean of the three zones', read: (s) => chamberMean(s) },
  ],
  // biome-ignore format: one entry per line reads like the PLC's register list
  bits: [
    { table: 'coils', address: 0, name: 'heaters_on', description: 'Heater contactor output', read: (s) => s.heatersOn },
    { table: 'coils', address: 1, name: 'circulation_fan', description: 'Circulation fan output', read: (s) => s.heatersOn },
    { table: 'coils', address: 2, name: 'alarm_lamp', description: 'Red stack light: an alarm is active', read: (s) => s.alarm.active },
    { table: 'discrete', address: 0, name: 'door_open', description: 'Door open (loading a batch)', read: (s) => s.doorOpen },
    { table: 'discrete', address: 1, name: 'running', description: 'State is Running (soaking a batch)', read: (s) => s.state === 'Running' },
    { table: 'discrete', address: 2, name: 'down', description: 'State is Down', read: (s) => s.state === 'Down' },
    { table: 'discrete', address: 3, name: 'batch_loaded', description: 'A lot is in the oven', read: (s) => s.lot !== null },
  ],
};

/** Mean of the zone temperatures, rounded to 0.01 degC like the zones themselves. */
function chamberMean(s: OvenStatus): number {
  const [a, b, c] = s.zoneTempsC;
  return Math.round(((a + b + c) / 3) * 100) / 100;
}

/** Writes a status into a unit image according to its map. */
export function encodeStatus<S>(map: UnitMap<S>, status: S, image: UnitImage): void {
  for (const f of map.registers) {
    const regs = image[f.table];
    const v = f.read(status);
    switch (f.type) {
      case 'string':
        putString(regs, f.address, f.registers, String(v));
        break;
      case 'uint16':
        putUint16(regs, f.address, Number(v));
        break;
      case 'int16':
        putInt16Scaled(regs, f.address, Number(v), f.scale);
        break;
      case 'uint32':
        putUint32(regs, f.address, Number(v), f.order);
        break;
      case 'float32':
        putFloat32(regs, f.address, Number(v), f.order);
        break;
    }
  }
  for (const b of map.bits) image[b.table][b.address] = b.read(status) ? 1 : 0;
}

/** Number of registers a field occupies. */
export function fieldWidth(f: RegisterField<unknown>): number {
  return f.type === 'string' ? f.registers : f.type === 'uint32' || f.type === 'float32' ? 2 : 1;
}
