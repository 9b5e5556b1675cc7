/**
 * MQTT message mapping as pure functions, and the golden cases in src/drivers/mqtt/testcases/<case>/
 * (device.yaml, messages.jsonl with topic and raw payload, expected.jsonl with one line per message:
 * readings, problems and warnings; a message with problems has no readings). Messages arrive at
 * 1000 ms in the golden runs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  compilePath,
  MessageMapper,
  pathGet,
  timestampMs,
  topicFilterProblem,
  topicMatches,
} from '../../src/drivers/mqtt/mapping.ts';
import { loadDeviceMap } from '../../src/gateway/config/config.ts';

const root = 'src/drivers/mqtt/testcases';
const arrivalMs = 1000;
const jsonl = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
/** V8's JSON.parse messages change between Node versions: compare "invalid JSON" without them. */
const stable = (s: string) => (s.startsWith('invalid JSON') ? 'invalid JSON' : s);

describe('mqtt golden cases', () => {
  for (const name of readdirSync(root).sort()) {
    it(name, () => {
      const loaded = loadDeviceMap(join(root, name, 'device.yaml'));
      expect(loaded.issues).toEqual([]);
      if (loaded.value?.protocol !== 'mqtt') throw new Error('not an mqtt device');
      const mapper = new MessageMapper(loaded.value.id, loaded.value.tags);
      const messages = jsonl(join(root, name, 'messages.jsonl'));
      const expected = jsonl(join(root, name, 'expected.jsonl'));
      expect(messages).toHaveLength(expected.length);
      // payloadBase64 for bytes a JSON string cannot hold (invalid UTF-8).
      messages.forEach((m: { topic: string; payload?: string; payloadBase64?: string }, i: number) => {
        const bytes =
          m.payloadBase64 !== undefined
            ? Buffer.from(m.payloadBase64, 'base64')
            : Buffer.from(m.payload ?? '');
        const got = mapper.map(m.topic, bytes, arrivalMs);
        const readings = got.readings.map(({ device: _d, ...r }) =>
          r.reason ? { ...r, reason: stable(r.reason) } : r,
        );
        expect(
          { readings, problems: got.problems.map(stable), warnings: got.warnings },
          `message ${i + 1}: ${m.payload ?? m.payloadBase64}`,
        ).toEqual(expected[i]);
      });
    });
  }
});

describe('topic filters', () => {
  const cases: [string, string, boolean][] = [
    ['a/b', 'a/b', true],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['#', 'a/b', true],
    ['+/+', 'a/b', true],
    ['+', '$SYS', false],
    ['#', '$SYS/broker', false],
    ['$SYS/#', '$SYS/broker', true],
    ['a/+/c', 'a//c', true],
  ];
  for (const [filter, topic, match] of cases) {
    it(`${filter} ${match ? 'matches' : 'does not match'} ${topic}`, () =>
      expect(topicMatches(filter, topic)).toBe(match));
  }
  it('rejects malformed filters', () => {
    expect(topicFilterProblem('a/#/b')).toMatch(/#/);
    expect(topicFilterProblem('a/b#')).toMatch(/#/);
    expect(topicFilterProblem('a/b+')).toMatch(/\+/);
    expect(topicFilterProblem('a/+/#')).toBeNull();
    expect(() => new MessageMapper('d', [{ name: 't', topic: 'x/#/y', value: '$' }])).toThrow(
      /whole last level/,
    );
  });
});

describe('JSON paths and timestamps', () => {
  it('walks names and indices, and says when something is missing', () => {
    const doc = { a: { 'b-c': [10, { d: null }] } };
    expect(pathGet(doc, compilePath('$.a.b-c[0]'))).toBe(10);
    expect(pathGet(doc, compilePath('$.a.b-c[1].d'))).toBeNull();
    expect(typeof pathGet(doc, compilePath('$.a.x'))).toBe('symbol');
    expect(typeof pathGet(doc, compilePath('$.a.b-c[5]'))).toBe('symbol');
    expect(typeof pathGet(doc, compilePath('$.a.toString'))).toBe('symbol');
    expect(pathGet(doc, compilePath('$'))).toBe(doc);
  });
  it('takes ms, seconds and ISO 8601', () => {
    expect(timestampMs(1_767_600_000_000)).toBe(1_767_600_000_000);
    expect(timestampMs(1_767_600_000.5)).toBe(1_767_600_000_500);
    expect(timestampMs('2026-01-05T06:00:00Z')).toBe(Date.UTC(2026, 0, 5, 6));
    expect(timestampMs('2026-01-05')).toBeNull();
    expect(timestampMs(-5)).toBeNull();
    expect(timestampMs(null)).toBeNull();
  });
});
