/**
 * The user name/password check shared by the OPC UA server and the MQTT broker. Users come from the
 * caller's options (test fixtures, a demo config); the simulators have no built-in accounts.
 */

import { createHash, timingSafeEqual } from 'node:crypto';

export interface Credentials {
  username: string;
  password: string;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * True when the pair matches one entry. Every entry is compared, both fields in constant time over
 * fixed-length digests, so the time taken does not reveal which user names exist.
 */
export function credentialsMatch(users: readonly Credentials[], username: string, password: string): boolean {
  const u = digest(username);
  const p = digest(password);
  let ok = false;
  for (const entry of users) {
    const userOk = timingSafeEqual(digest(entry.username), u);
    const passwordOk = timingSafeEqual(digest(entry.password), p);
    ok = (userOk && passwordOk) || ok;
  }
  return ok;
}
