import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { describe, expect, it } from 'vitest';
import { emittedSeries, stdoutOf, type EmittedSeries } from '../harness/emf.js';
import { alarmReferences, dashboardReferences, unmatchedReferences, unreferencedSeries } from './metric-references.js';

// The checker template.test.ts runs on the packaged dashboard and alarms: here it is fed bodies with
// the mistakes it exists to catch, against EMF records a real Powertools Metrics wrote.

let emitted: EmittedSeries[] = [];
const functionNames = ['shop-prod-orders', 'shop-prod-billing'];

async function written(): Promise<EmittedSeries[]> {
  if (emitted.length > 0) return emitted;
  const metrics = new Metrics({ namespace: 'Shop/Orders', serviceName: 'orders' });
  emitted = emittedSeries(
    await stdoutOf(() => {
      metrics.addMetric('OrdersPlaced', MetricUnit.Count, 1);
      metrics.singleMetric().addDimension('country', 'NL').addMetric('OrdersPlaced', MetricUnit.Count, 1);
      metrics.publishStoredMetrics();
    }),
  );
  return emitted;
}

const widget = (title: string, metrics: unknown[][]) => ({ type: 'metric', properties: { title, region: 'eu-west-1', metrics } });
const check = async (widgets: unknown[]) =>
  unmatchedReferences(dashboardReferences({ widgets } as Parameters<typeof dashboardReferences>[0]), { emitted: await written(), functionNames });

describe('the dashboard checker', () => {
  it('reads what a real Powertools Metrics wrote: the total and the per-country series', async () => {
    expect((await written()).map((s) => [s.namespace, s.metricName, s.dimensions])).toEqual(
      expect.arrayContaining([
        ['Shop/Orders', 'OrdersPlaced', { service: 'orders' }],
        ['Shop/Orders', 'OrdersPlaced', { service: 'orders', country: 'NL' }],
      ]),
    );
  });

  it('passes a dashboard whose every row, SEARCH and Lambda metric exists', async () => {
    expect(
      await check([
        widget('orders', [
          ['Shop/Orders', 'OrdersPlaced', 'service', 'orders', { stat: 'Sum' }],
          [{ expression: `SEARCH('{"Shop/Orders",country,service} service="orders" MetricName="OrdersPlaced"', 'Sum', 300)`, id: 'e1' }],
        ]),
        widget('functions', [
          ['AWS/Lambda', 'Errors', 'FunctionName', 'shop-prod-orders'],
          ['.', 'Throttles', '.', 'shop-prod-billing'],
        ]),
        { type: 'text', properties: { markdown: 'not a metric' } },
      ]),
    ).toEqual([]);
  });

  it('fails a misspelt product metric, naming the widget and what the product writes', async () => {
    expect(await check([widget('orders', [['Shop/Orders', 'OrderPlaced', 'service', 'orders']])])).toEqual([
      'widget 0 "orders": Shop/Orders OrderPlaced {service=orders}: the product writes no OrderPlaced (it writes OrdersPlaced)',
    ]);
  });

  it('fails a right name with a dimension set the product never writes, or another dimension value', async () => {
    const problems = await check([
      widget('no dimensions', [['Shop/Orders', 'OrdersPlaced']]),
      widget('one too many', [['Shop/Orders', 'OrdersPlaced', 'service', 'orders', 'region', 'eu']]),
      widget('other service', [['Shop/Orders', 'OrdersPlaced', 'service', 'billing']]),
    ]);
    expect(problems).toHaveLength(3);
    for (const problem of problems) expect(problem).toContain('the product writes OrdersPlaced only with {service=orders, country=NL} or {service=orders}');
  });

  it('fails a namespace the product does not write to', async () => {
    expect(await check([widget('typo', [['Shop/Order', 'OrdersPlaced', 'service', 'orders']])])).toEqual([
      'widget 0 "typo": Shop/Order OrdersPlaced {service=orders}: the product writes nothing to namespace Shop/Order',
    ]);
  });

  it('fails a SEARCH whose schema names a dimension the series do not have', async () => {
    const problems = await check([widget('by country', [[{ expression: `SEARCH('{"Shop/Orders",county,service} MetricName="OrdersPlaced"', 'Sum', 300)`, id: 'e1' }]])]);
    expect(problems).toEqual([expect.stringContaining('widget 0 "by country": Shop/Orders OrdersPlaced {county, service}: the product writes OrdersPlaced only with')]);
  });

  it('fails a Lambda metric Lambda does not publish, a function the stack lacks, or another dimension set', async () => {
    const problems = await check([
      widget('lambda', [
        ['AWS/Lambda', 'Error', 'FunctionName', 'shop-prod-orders'],
        ['AWS/Lambda', 'Errors', 'FunctionName', 'shop-dev-orders'],
        ['AWS/Lambda', 'Errors', 'FunctionName', 'shop-prod-orders', 'Resource', 'shop-prod-orders:live'],
      ]),
    ]);
    expect(problems).toEqual([
      'widget 0 "lambda": AWS/Lambda Error {FunctionName=shop-prod-orders}: Error is not a metric Lambda publishes per function',
      'widget 0 "lambda": AWS/Lambda Errors {FunctionName=shop-dev-orders}: FunctionName shop-dev-orders is not a function of the stack (shop-prod-orders, shop-prod-billing)',
      'widget 0 "lambda": AWS/Lambda Errors {FunctionName=shop-prod-orders, Resource=shop-prod-orders:live}: its dimensions must be exactly FunctionName, not {FunctionName, Resource}',
    ]);
  });

  it('reads "." as the value of the row above, so a shorthand row is checked like a full one', async () => {
    const problems = await check([widget('shorthand', [['Shop/Orders', 'OrdersPlaced', 'service', 'orders'], ['.', 'OrdersPlacd', '.', '.']])]);
    expect(problems).toEqual(['widget 0 "shorthand": Shop/Orders OrdersPlacd {service=orders}: the product writes no OrdersPlacd (it writes OrdersPlaced)']);
  });

  it('checks an alarm\'s metric and a metric math alarm\'s MetricStats the same way', async () => {
    const known = { emitted: await written(), functionNames };
    const single = alarmReferences('errors', { Namespace: 'AWS/Lambda', MetricName: 'Errors', Dimensions: [{ Name: 'FunctionName', Value: 'shop-prod-gone' }] });
    const math = alarmReferences('orders', {
      Metrics: [
        { Id: 'placed', MetricStat: { Metric: { Namespace: 'Shop/Orders', MetricName: 'OrdersPlaced', Dimensions: [{ Name: 'service', Value: 'orders' }] } } },
        { Id: 'typo', MetricStat: { Metric: { Namespace: 'Shop/Orders', MetricName: 'OrdersPaced', Dimensions: [{ Name: 'service', Value: 'orders' }] } } },
        { Id: 'sum', Expression: 'placed + typo' },
      ],
    });
    expect(unmatchedReferences([...single, ...math], known)).toEqual([
      'alarm errors: AWS/Lambda Errors {FunctionName=shop-prod-gone}: FunctionName shop-prod-gone is not a function of the stack (shop-prod-orders, shop-prod-billing)',
      'alarm orders: Shop/Orders OrdersPaced {service=orders}: the product writes no OrdersPaced (it writes OrdersPlaced)',
    ]);
  });

  it('names a series the product writes that nothing graphs', async () => {
    const references = dashboardReferences({ widgets: [widget('total only', [['Shop/Orders', 'OrdersPlaced', 'service', 'orders']])] } as Parameters<typeof dashboardReferences>[0]);
    expect(unreferencedSeries(await written(), references)).toEqual(['Shop/Orders OrdersPlaced {service, country}']);
  });
});
