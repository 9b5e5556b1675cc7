/**
 * The validator API's JSON body parser. `JSON.parse` costs time in proportion to the values it
 * builds, and a body of a few hundred KB of `[[{},{},…]]` or `[[[…]]]` holds hundreds of thousands
 * of them (issue 12: 32 MiB of it blocked a validator's event loop for 13.5 s). So one linear pass
 * over the text first counts containers (objects and arrays) and nesting depth, outside strings,
 * and refuses a body beyond either bound before anything is built; `__proto__` keys are refused as
 * fastify's own parser does. Legitimate bodies are flat: `{"ids": [...]}` has two containers.
 */

export interface JsonBounds {
  /** Deepest nesting of objects and arrays. */
  jsonDepthMax: number;
  /** Objects and arrays in one body. */
  jsonContainersMax: number;
}

/** A JSON body refused before parsing; answered 400 with its code. */
export class JsonBodyError extends Error {
  override readonly name = 'JsonBodyError';
  readonly statusCode = 400;
  readonly code: 'json_too_deep' | 'json_too_many_values' | 'json_invalid' | 'json_proto_key';
  constructor(code: JsonBodyError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

const quote = 0x22;
const backslash = 0x5c;

/** Parses `text` as JSON within `bounds`; throws {@link JsonBodyError}. */
export function parseBoundedJson(text: string, bounds: JsonBounds): unknown {
  let depth = 0;
  let containers = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === quote) {
      // Skip the string: to its closing quote, over escapes.
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === backslash) i++;
        else if (s === quote) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      containers++;
      if (depth > bounds.jsonDepthMax)
        throw new JsonBodyError('json_too_deep', `JSON nested deeper than ${bounds.jsonDepthMax}`);
      if (containers > bounds.jsonContainersMax)
        throw new JsonBodyError(
          'json_too_many_values',
          `more than ${bounds.jsonContainersMax} objects and arrays in one body`,
        );
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  if (text.includes('"__proto__"')) throw new JsonBodyError('json_proto_key', 'a "__proto__" key');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new JsonBodyError('json_invalid', (err as Error).message);
  }
}
