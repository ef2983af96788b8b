import type { Fault, FaultInjector } from '../harness/aws-proxy.js';
import { SeededRandom } from './random.js';

/** The kinds of fault injected, and how often each is picked when a call gets a fault. */
export interface FaultMix {
  throttle: number;
  '5xx': number;
  '503': number;
  /** Added latency before the call is forwarded (it then succeeds). */
  delay: number;
}

/** Options of {@link randomFaults}; every one but `rate` has a default. */
export interface RandomFaultOptions {
  /** Probability that one call gets a fault, 0..1 (e.g. 0.2). */
  rate: number;
  seed?: number;
  /**
   * SigV4 service names to inject into (ec2, iam, ssm, monitoring, dynamodb, scheduler, sns).
   * Default: every service. A rate per service may be given instead of the one `rate`.
   */
  services?: readonly string[] | Readonly<Record<string, number>>;
  /** Default: throttle 0.4, 5xx 0.2, 503 0.2, delay 0.2. */
  mix?: Partial<FaultMix>;
  /** Added latency range for `delay` faults, ms. Default [50, 400]. */
  delayMs?: readonly [number, number];
}

/** One injected fault, as the log of {@link RandomFaults} keeps it. */
export interface InjectedFault {
  service: string;
  operation: string;
  fault: 'throttle' | '5xx' | '503' | 'delay';
}

/** A seeded fault injector for the proxy (`proxy.faults.set(faults.injector)`), with its log. */
export interface RandomFaults {
  injector: FaultInjector;
  injected(): InjectedFault[];
  /** Calls seen per service, faulted or not. */
  callsSeen(): Record<string, number>;
}

/**
 * Faults at a configurable rate, per service, reproducible: each (service, operation) pair has its
 * own seeded sequence, so the n-th DescribeInstances of a run gets the same fault whatever the
 * other services did before it.
 *
 * @example
 * const faults = randomFaults({ rate: 0.2, seed: 7 });
 * proxy.faults.set(faults.injector);
 */
export function randomFaults(options: RandomFaultOptions): RandomFaults {
  const seed = options.seed ?? 1;
  const mix: FaultMix = { throttle: 0.4, '5xx': 0.2, '503': 0.2, delay: 0.2, ...options.mix };
  const [minDelay, maxDelay] = options.delayMs ?? [50, 400];
  const streams = new Map<string, SeededRandom>();
  const injected: InjectedFault[] = [];
  const seen: Record<string, number> = {};
  const rateFor = (service: string): number => {
    const services = options.services;
    if (services === undefined) return options.rate;
    if (Array.isArray(services)) return (services as readonly string[]).includes(service) ? options.rate : 0;
    return (services as Readonly<Record<string, number>>)[service] ?? 0;
  };
  const total = mix.throttle + mix['5xx'] + mix['503'] + mix.delay;

  const injector: FaultInjector = (service, operation) => {
    seen[service] = (seen[service] ?? 0) + 1;
    const key = `${service}:${operation}`;
    let stream = streams.get(key);
    if (!stream) {
      stream = SeededRandom.derive(seed, key);
      streams.set(key, stream);
    }
    // Two draws per call whatever happens, so one call's outcome never shifts the next call's.
    const hit = stream.next() < rateFor(service);
    const which = stream.next() * total;
    const delay = minDelay + Math.floor(stream.next() * (maxDelay - minDelay + 1));
    if (!hit || total <= 0) return undefined;
    let fault: Fault;
    let kind: InjectedFault['fault'];
    if (which < mix.throttle) [fault, kind] = ['throttle', 'throttle'];
    else if (which < mix.throttle + mix['5xx']) [fault, kind] = ['5xx', '5xx'];
    else if (which < mix.throttle + mix['5xx'] + mix['503']) [fault, kind] = ['503', '503'];
    else [fault, kind] = [{ delayMs: delay }, 'delay'];
    injected.push({ service, operation, fault: kind });
    return fault;
  };
  return { injector, injected: () => [...injected], callsSeen: () => ({ ...seen }) };
}
