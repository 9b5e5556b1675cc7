/** The strict Prometheus text parser the metrics tests use reads special values as Prometheus does. */
import { describe, expect, it } from 'vitest';
import { parsePrometheus } from './prometheus.ts';

describe('parsePrometheus', () => {
  it('reads NaN and Inf in any case (prom-client writes Nan before an event-loop sample exists)', () => {
    const text = [
      '# HELP a_seconds a',
      '# TYPE a_seconds gauge',
      'a_seconds Nan',
      '# HELP b b',
      '# TYPE b gauge',
      'b +Inf',
      '# HELP c c',
      '# TYPE c gauge',
      'c -inf',
      '',
    ].join('\n');
    const samples = [...parsePrometheus(text).values()].flatMap((f) => f.samples);
    expect(samples.map((s) => s.value)).toEqual([NaN, Infinity, -Infinity]);
  });

  it('still refuses a value that is not a number', () => {
    expect(() => parsePrometheus('# HELP d d\n# TYPE d gauge\nd twelve\n')).toThrow(/not a number/);
  });
});
