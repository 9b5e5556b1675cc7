/**
 * Secret references: secrets never live in YAML. A string value may be, or contain,
 * `${env:NAME}` (an environment variable; `${env:NAME:-default}` gives a default when it is unset) or
 * `${file:PATH}` (a file's contents, trailing newline removed; a relative PATH is relative to the YAML
 * file's folder). `$${` writes a literal `${`.
 * Keys that name a secret (password, passphrase, token, secret, privateKey, apiKey) must hold a
 * reference, never a literal: a literal there is an error.
 * Substitution gives text; the loader (load.ts) turns a field that is exactly one reference into the
 * number or boolean its schema expects (`port: ${env:PORT:-502}`).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

const referencePattern = /\$\$\{|\$\{(env|file):([^}]*)\}/g;
const secretKeyPattern = /^(password|passphrase|token|secret|privateKey|apiKey|clientSecret)$/i;
const secretFileBytesMax = 64 * 1024;

export interface SecretContext {
  env: NodeJS.ProcessEnv;
  /** Folder that relative `${file:…}` paths start from. */
  baseDir: string;
}

export type ResolveResult =
  | { ok: true; value: string; usedReference: boolean }
  | { ok: false; message: string };

export function resolveReferences(text: string, ctx: SecretContext): ResolveResult {
  let usedReference = false;
  let failure: string | undefined;
  const value = text.replace(referencePattern, (match, kind: string | undefined, arg: string | undefined) => {
    if (match === '$${') return '${';
    usedReference = true;
    let name = (arg ?? '').trim();
    if (kind === 'env') {
      const dflt = name.indexOf(':-');
      const fallback = dflt >= 0 ? name.slice(dflt + 2) : undefined;
      if (dflt >= 0) name = name.slice(0, dflt);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        failure ??= `\${env:${name}} is not a valid environment variable name`;
        return '';
      }
      const v = ctx.env[name];
      if ((v === undefined || v === '') && fallback !== undefined) return fallback;
      if (v === undefined || v === '') {
        failure ??= `environment variable ${name} is not set (referenced as \${env:${name}})`;
        return '';
      }
      return v;
    }
    if (!name) {
      failure ??= '${file:} needs a path';
      return '';
    }
    const path = isAbsolute(name) ? name : resolve(ctx.baseDir, name);
    try {
      const content = readFileSync(path);
      if (content.byteLength > secretFileBytesMax) {
        failure ??= `secret file ${path} is larger than ${secretFileBytesMax} bytes`;
        return '';
      }
      return content.toString('utf8').replace(/\r?\n$/, '');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      failure ??=
        code === 'ENOENT'
          ? `secret file ${path} does not exist`
          : `secret file ${path}: ${(err as Error).message}`;
      return '';
    }
  });
  if (/\$\{(?!env:|file:)[^}]*\}/.test(text.replaceAll('$${', ''))) {
    failure ??= `unknown reference in "${text}": use \${env:NAME} or \${file:PATH} (write $\${ for a literal)`;
  }
  return failure ? { ok: false, message: failure } : { ok: true, value, usedReference };
}

export function isSecretKey(key: string): boolean {
  return secretKeyPattern.test(key);
}
