/** Event kinds and the data class each belongs to (process data may be shown to the order's customer). */
export const eventKinds = [
  'step_started',
  'step_finished',
  'part_completed',
  'measurement',
  'material_consumed',
  'lot_started',
  'lot_finished',
  'equipment_status',
  'alarm',
  'gap',
  // An order's life cycle and its lots (docs/api.md "Orders"), signed by the member's office signer.
  'order_accepted',
  'order_in_production',
  'order_closed',
  'lot_bound',
] as const;
export type EventKind = (typeof eventKinds)[number];

/** OPC UA-style quality of a value: `good` values may feed process events; `bad` never do. */
export const qualities = ['good', 'uncertain', 'bad'] as const;
export type Quality = (typeof qualities)[number];

export const dataClasses = ['process', 'equipment'] as const;
export type DataClass = (typeof dataClasses)[number];

/** Equipment status, alarms and gaps are the enterprise's alone; the rest is process data. */
export const defaultDataClass: Record<EventKind, DataClass> = {
  step_started: 'process',
  step_finished: 'process',
  part_completed: 'process',
  measurement: 'process',
  material_consumed: 'process',
  lot_started: 'process',
  lot_finished: 'process',
  equipment_status: 'equipment',
  alarm: 'equipment',
  gap: 'equipment',
  order_accepted: 'process',
  order_in_production: 'process',
  order_closed: 'process',
  lot_bound: 'process',
};
