/**
 * Device-map schema of the normaliser's rules: when a reading becomes an event (the trigger), what
 * the event carries (kind, values) and its context (lot, product, order, step), read from tags.
 * Semantics in docs/device-maps.md; implementation in normaliser.ts.
 */
import { z } from 'zod';
import { durationMs, identifier } from '../config/common.ts';
import { dataClasses, eventKinds } from '../event/kinds.ts';

/** Values one rule may carry: bounds the size of every event (see eventBytesMax in src/event/bounds.ts). */
export const ruleValuesMax = 16;

/** Where an event's context comes from: tag names of the same device. */
export const contextSchema = z.strictObject({
  lot: identifier.optional().describe('Tag holding the current lot id.'),
  product: identifier.optional().describe('Tag holding the current product serial.'),
  order: identifier.optional().describe('Tag holding the current order id.'),
  step: identifier.optional().describe('Tag holding the current process step.'),
});

const ruleCommon = {
  name: identifier,
  kind: z.enum(eventKinds.filter((k) => k !== 'gap') as [string, ...string[]]),
  dataClass: z
    .enum(dataClasses)
    .optional()
    .describe('Defaults from the kind: equipment_status and alarm are "equipment".'),
  values: z
    .array(identifier)
    .max(ruleValuesMax)
    .default([])
    .describe('Tags whose current values the event carries.'),
  context: contextSchema.optional().describe("Overrides the device's context for this rule, key by key."),
};

const initial = z
  .enum(['ignore', 'emit'])
  .default('ignore')
  .describe(
    'The first value seen after start: "ignore" takes it as the baseline (no event); "emit" treats it as a ' +
      'change (e.g. report the equipment status at start-up).',
  );

export const ruleSchema = z.discriminatedUnion('trigger', [
  z
    .strictObject({
      trigger: z.literal('change'),
      tag: identifier,
      initial,
      finishPrevious: z
        .enum(['emit', 'skip'])
        .default('emit')
        .describe(
          'For kind lot_started (step_started): also emit lot_finished (step_finished) for the previous ' +
            'value, with the context it started with. "skip" when another rule reports the finish.',
        ),
      ...ruleCommon,
    })
    .describe('When the tag takes a new value.'),
  z
    .strictObject({ trigger: z.literal('rising'), tag: identifier, initial, ...ruleCommon })
    .describe('When the tag goes from false/0 to true/non-zero.'),
  z
    .strictObject({ trigger: z.literal('falling'), tag: identifier, initial, ...ruleCommon })
    .describe('When the tag goes from true/non-zero to false/0.'),
  z
    .strictObject({
      trigger: z.literal('counter'),
      tag: identifier,
      maxIncrement: z
        .number()
        .int()
        .min(1)
        .max(10_000)
        .default(100)
        .describe(
          'Largest step turned into events (one per increment). A bigger jump re-synchronises the ' +
            'counter without events and is counted and logged (a replaced PLC, a preset counter).',
        ),
      rollover: z
        .number()
        .int()
        .min(1)
        .max(2 ** 53 - 1)
        .optional()
        .describe(
          'Largest value before the counter wraps to 0 (65535 for a uint16 counter). Without it, ' +
            'a decrease is a reset to 0 and the new value counts the parts made since.',
        ),
      ...ruleCommon,
    })
    .describe('One event per increment of the counter, even if it moved by several between reads.'),
  z
    .strictObject({ trigger: z.literal('update'), tag: identifier, ...ruleCommon })
    .describe('Every new reading of the tag, changed or not (e.g. each MQTT message).'),
  z
    .strictObject({
      trigger: z.literal('period'),
      everyMs: durationMs(100, 86_400_000).describe(
        'Aligned to the wall clock (every 5000 ms: at :00, :05 …).',
      ),
      ...ruleCommon,
    })
    .describe('Every everyMs, with the current values; skipped while none of them is readable.'),
]);

export type Rule = z.output<typeof ruleSchema>;
export type RuleContext = z.output<typeof contextSchema>;
