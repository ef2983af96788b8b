import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logger } from '../shared/logger.js';
import { advance, readRecord, saveRecord } from '../shared/onboarding-state.js';
import { parseSettings } from '../shared/settings.js';
import { parseCheckRequest } from '../shared/triggers.js';

const settings = parseSettings();

/** Placeholder checker: records that the scheduled check ran (the metric check comes with issue 3). */
export const handler = middy<unknown, { instanceId: string; recorded: boolean }>()
  .use(injectLambdaContext(logger))
  .handler(async (event) => {
    const request = parseCheckRequest(event);
    const record = await readRecord(settings.stateTable, request.instanceId);
    if (!record) return { instanceId: request.instanceId, recorded: false };
    await saveRecord(settings.stateTable, advance(record, {}, 'check-ran', new Date(), `check ${request.attempt}`));
    return { instanceId: request.instanceId, recorded: true };
  });
