/**
 * `masbc-edge orders create|bind|state|show`: a member's operator records customer orders through
 * its API (docs/api.md "Orders"), with a reader credential of the member.
 *
 * @example
 *   masbc-edge orders create --api … --credential ops.jwt --order PO-1001 --customer globex --product valve --quantity 50
 *   masbc-edge orders bind PO-1001 --lot LOT-7 --api … --credential ops.jwt
 *   masbc-edge orders state PO-1001 closed --api … --credential ops.jwt
 */
import type { Command } from 'commander';
import { type ApiOptions, apiCall, apiOptions } from './api-client.ts';
import { integer } from './shared.ts';

export function registerOrders(program: Command): void {
  const orders = program.command('orders').description("Record and read a member's customer orders");
  apiOptions(orders.command('create').description('Register a customer order (accepted)'))
    .requiredOption('--order <id>', 'order id')
    .requiredOption('--customer <name>', 'the customer')
    .requiredOption('--product <name>', 'what is ordered')
    .requiredOption('--quantity <n>', 'how many', integer(1, 1_000_000_000))
    .action(
      async (o: ApiOptions & { order: string; customer: string; product: string; quantity: number }) => {
        const r = await apiCall<{ eventIds: string[] }>(o, '/v1/orders', {
          method: 'POST',
          body: { order: o.order, customer: o.customer, product: o.product, quantity: o.quantity },
        });
        console.log(`order ${o.order} accepted (event ${r.eventIds[0]})`);
      },
    );
  apiOptions(orders.command('bind <order>').description('Bind a lot to an order (a lot_bound event)'))
    .requiredOption('--lot <id>', 'the lot')
    .action(async (order: string, o: ApiOptions & { lot: string }) => {
      await apiCall(o, `/v1/orders/${encodeURIComponent(order)}/lots`, {
        method: 'POST',
        body: { lot: o.lot },
      });
      console.log(`lot ${o.lot} bound to order ${order}`);
    });
  apiOptions(
    orders.command('state <order> <state>').description('Move an order to in_production or closed'),
  ).action(async (order: string, state: string, o: ApiOptions) => {
    const r = await apiCall<{ summary?: { eventCount: number; eventsRoot: string } }>(
      o,
      `/v1/orders/${encodeURIComponent(order)}/state`,
      { method: 'POST', body: { state } },
    );
    console.log(
      `order ${order} ${state}` +
        (r.summary ? `: ${r.summary.eventCount} events, root ${r.summary.eventsRoot}` : ''),
    );
  });
  apiOptions(
    orders.command('show <order>').description('An order, its state, lots and life cycle (JSON)'),
  ).action(async (order: string, o: ApiOptions) => {
    console.log(JSON.stringify(await apiCall(o, `/v1/orders/${encodeURIComponent(order)}`), null, 2));
  });
}
