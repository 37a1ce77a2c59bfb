/** Time as a dependency, so tests can put the service at 03:00 on a Sunday. */
export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };
