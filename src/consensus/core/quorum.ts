/**
 * Quorum arithmetic: how many faults n validators tolerate, how many votes make a quorum, and which
 * validator is the primary of a view.
 */

/** f = ⌊(n−1)/3⌋: byzantine validators tolerated. */
export function faultsTolerated(n: number): number {
  return Math.floor((n - 1) / 3);
}

/**
 * ⌊(n+f)/2⌋+1: any two quorums share ≥ f+1 validators, so at least one honest one. Equals 2f+1 when
 * n = 3f+1 and is larger for other n (n=5: 4), which 2f+1 alone would get wrong.
 */
export function quorumSize(n: number): number {
  return Math.floor((n + faultsTolerated(n)) / 2) + 1;
}

export function primaryOf(view: number, n: number): number {
  return view % n;
}
