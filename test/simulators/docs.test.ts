/**
 * docs/simulators.md is what the drivers' device maps are written from: every register, coil, NodeId
 * and malformed payload in the code must appear there exactly.
 */
import { readFileSync } from 'node:fs';
import { DataType } from 'node-opcua';
import { describe, expect, it } from 'vitest';
import { MALFORMED_REASONS, type MalformedMessage } from '../../simulators/ground-truth.ts';
import {
  type BitField,
  fieldWidth,
  OVEN_MAP,
  PRESS_MAP,
  type RegisterField,
} from '../../simulators/modbus-maps.ts';
import { malformedPayload } from '../../simulators/mqtt-sensors.ts';
import { CNC_VARIABLES, OPCUA_NAMESPACE_URI } from '../../simulators/opcua-cnc.ts';

const doc = readFileSync(new URL('../../docs/simulators.md', import.meta.url), 'utf8');

/** The text between a heading and the next heading of the same or a higher level. */
function section(heading: string): string {
  const start = doc.indexOf(heading);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const level = /^#+/.exec(heading)![0];
  const rest = doc.slice(start + heading.length);
  const end = rest.search(new RegExp(`\\n#{1,${level.length}} `));
  return end < 0 ? rest : rest.slice(0, end);
}

const span = (from: number, width: number) => (width === 1 ? `${from}` : `${from}-${from + width - 1}`);

function registerRow(f: RegisterField<unknown>): string {
  const type =
    f.type === 'string'
      ? `string, ${2 * f.registers} chars`
      : f.type === 'int16'
        ? `int16 x${f.scale}`
        : f.type === 'uint32' || f.type === 'float32'
          ? `${f.type} ${f.order}`
          : f.type;
  const w = fieldWidth(f);
  return `| ${span(f.address, w)} | ${span(f.address + 1, w)} | \`${f.name}\` | ${type} | ${f.unit ?? ''} | ${f.description} |`;
}

const bitRow = (b: BitField<unknown>) =>
  `| ${b.address} | ${b.address + 1} | \`${b.name}\` | ${b.description} |`;

const TABLE_TITLES = {
  holding: 'Holding registers (function 03):',
  input: 'Input registers (function 04):',
  coils: 'Coils (function 01):',
  discrete: 'Discrete inputs (function 02):',
} as const;

/** Cells of a markdown table row, trimmed (the formatter pads columns). */
const cells = (row: string) =>
  row
    .split('|')
    .slice(1, -1)
    .map((c) => c.trim());

/** The rows (as cells) of the markdown table that follows `title` inside `text`. */
function tableAfter(text: string, title: string): string[][] {
  const at = text.indexOf(title);
  expect(at, title).toBeGreaterThanOrEqual(0);
  const lines = text
    .slice(at + title.length)
    .trimStart()
    .split('\n');
  const rows: string[][] = [];
  for (const line of lines.slice(2)) {
    if (!line.startsWith('|')) break;
    rows.push(cells(line));
  }
  return rows;
}

describe('docs/simulators.md', () => {
  const units = [
    { heading: '### Unit 1: `PRESS1`', map: PRESS_MAP },
    { heading: '### Unit 2: `OVEN1`', map: OVEN_MAP },
  ] as const;

  for (const { heading, map } of units) {
    it(`lists exactly the ${map.kind} unit's registers and bits`, () => {
      const text = section(heading);
      for (const table of ['holding', 'input'] as const) {
        const fields = (map.registers as readonly RegisterField<unknown>[]).filter((f) => f.table === table);
        expect(tableAfter(text, TABLE_TITLES[table])).toEqual(fields.map(registerRow).map(cells));
      }
      for (const table of ['coils', 'discrete'] as const) {
        const bits = (map.bits as readonly BitField<unknown>[]).filter((b) => b.table === table);
        expect(tableAfter(text, TABLE_TITLES[table])).toEqual(bits.map(bitRow).map(cells));
      }
    });
  }

  it('lists exactly the OPC UA variables, with data types and units', () => {
    const rows = CNC_VARIABLES.map(
      (v) =>
        `| \`ns=1;s=CNC1.${v.leaf}\` | ${DataType[v.dataType]} | ${v.analog?.units.displayName?.text ?? ''} | ${v.description} |`,
    );
    expect(tableAfter(section('## OPC UA'), 'All are read-only.')).toEqual(rows.map(cells));
    expect(doc).toContain(OPCUA_NAMESPACE_URI);
  });

  it('shows every malformed payload verbatim', () => {
    const malformedRows = tableAfter(section('## MQTT'), "(`<ts>` is the record's `atMs`):");
    for (const channel of ['telemetry', 'scan'] as const) {
      for (const reason of MALFORMED_REASONS) {
        const record: MalformedMessage = {
          kind: 'malformed_message',
          seq: 1,
          atMs: 0,
          machine: 'X',
          channel,
          reason,
        };
        const payload = malformedPayload(record).replace('"ts":0', '"ts":<ts>');
        expect(malformedRows).toContainEqual([channel, `\`${reason}\``, `\`${payload}\``]);
      }
    }
  });
});
