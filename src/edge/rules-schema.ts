/**
 * Device-map schema of the normaliser's rules: when a reading becomes an event (the trigger), what
 * the event carries (kind, values) and its context (lot, product, order, step), read from tags.
 */
import { z } from 'zod';
import { durationMs, identifier } from '../config/common.ts';
import { dataClasses, eventKinds } from './kinds.ts';

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
  values: z.array(identifier).default([]).describe('Tags whose current values the event carries.'),
  context: contextSchema.optional().describe("Overrides the device's context for this rule."),
};

export const ruleSchema = z.discriminatedUnion('trigger', [
  z
    .strictObject({ trigger: z.literal('change'), tag: identifier, ...ruleCommon })
    .describe('When the tag takes a new value.'),
  z
    .strictObject({ trigger: z.literal('rising'), tag: identifier, ...ruleCommon })
    .describe('When the tag goes from false/0 to true/non-zero.'),
  z
    .strictObject({ trigger: z.literal('falling'), tag: identifier, ...ruleCommon })
    .describe('When the tag goes from true/non-zero to false/0.'),
  z
    .strictObject({ trigger: z.literal('counter'), tag: identifier, ...ruleCommon })
    .describe('One event per increment of the counter, even if it moved by several between reads.'),
  z
    .strictObject({ trigger: z.literal('update'), tag: identifier, ...ruleCommon })
    .describe('Every new reading of the tag, changed or not (e.g. each MQTT message).'),
  z
    .strictObject({ trigger: z.literal('period'), everyMs: durationMs(100, 86_400_000), ...ruleCommon })
    .describe('Every everyMs, with the current values.'),
]);

export type Rule = z.output<typeof ruleSchema>;
export type RuleContext = z.output<typeof contextSchema>;
