/**
 * The clock a replica is fed: milliseconds since the epoch that never go backwards and never stall.
 *
 * The core ignores a time below the last one it saw (io.ts), so following a wall clock that is
 * stepped back by an hour would freeze every timer, view changes included, for that hour. This
 * clock therefore advances at the monotonic rate (`performance.now()`) from the wall time it started
 * at, and re-anchors only forward: when the wall clock is ahead by more than `resyncMs` (NTP stepped
 * it forward, or the monotonic clock ran slow), it jumps to it. A wall clock stepped back is not
 * followed; block timestamps then run ahead of it by the step, which the other replicas bound with
 * `clockDriftMs` (they hold proposals too far ahead of their own clocks).
 */
export interface Clock {
  nowMs(): number;
}

export function monotonicWallClock(
  wallMs: () => number = Date.now,
  monoMs: () => number = () => performance.now(),
  resyncMs = 1_000,
): Clock {
  let anchorWall = wallMs();
  let anchorMono = monoMs();
  let last = anchorWall;
  return {
    nowMs() {
      const mono = anchorWall + (monoMs() - anchorMono);
      const wall = wallMs();
      let t = mono;
      if (wall - mono > resyncMs) {
        anchorWall = wall;
        anchorMono = monoMs();
        t = wall;
      }
      // Integer milliseconds: block timestamps are integers on the wire.
      last = Math.max(last, Math.floor(t));
      return last;
    },
  };
}
