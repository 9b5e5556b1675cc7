/** Schema pieces shared by the gateway and device schemas. */
import { z } from 'zod';

export const identifier = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    'expected 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit',
  )
  .describe('Identifier: 1-64 of A-Z a-z 0-9 . _ -');

export const durationMs = (min: number, max: number) => z.number().int().min(min).max(max);

const sizeUnits: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** A byte count: a number, or a string like "512 MiB" or "2GB". */
export const byteSize = z
  .union([
    z.number().int().positive(),
    z
      .string()
      .regex(
        /^\s*\d+(\.\d+)?\s*(B|kB|KB|MB|GB|KiB|MiB|GiB)\s*$/,
        'expected a size like "512 MiB", "2 GB" or a number of bytes',
      )
      .transform((s) => {
        const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$/.exec(s)!;
        return Math.floor(Number(m[1]) * sizeUnits[m[2]!.toLowerCase()]!);
      }),
  ])
  .describe('Bytes, as a number or a string like "512 MiB"');
