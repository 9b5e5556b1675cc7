/**
 * OPC UA values as readings: a status code's quality, a variant's value (scalars by data type,
 * arrays as JSON text), kept apart from the driver's session and subscription handling.
 */
import { DataType, type Variant, VariantArrayType } from 'node-opcua';
import { arrayTextCharsMax } from '../bounds.ts';
import { float32Shortest } from '../common/float32.ts';
import type { Quality, ReadingValue } from '../types.ts';

/** Severity bits of a status code (OPC UA Part 4, 7.39): 00 good, 01 uncertain, 1x bad. */
export function qualityOf(statusCode: number): Quality {
  const severity = statusCode >>> 30;
  return severity === 0 ? 'good' : severity === 1 ? 'uncertain' : 'bad';
}

/** A variant's value as a reading value, or why it cannot be one. */
export function convertVariant(v: Variant | null | undefined): ReadingValue | { problem: string } {
  if (!v || v.dataType === DataType.Null) return null;
  if (v.arrayType !== VariantArrayType.Scalar) {
    const items = Array.from(v.value as ArrayLike<unknown>, (x) => scalar(v.dataType, x));
    const text = JSON.stringify(items);
    return text.length > arrayTextCharsMax
      ? { problem: `array value longer than ${arrayTextCharsMax} characters` }
      : text;
  }
  return scalar(v.dataType, v.value);
}

function scalar(type: DataType, x: unknown): ReadingValue {
  if (x === null || x === undefined) return null;
  switch (type) {
    case DataType.Boolean:
      return Boolean(x);
    case DataType.SByte:
    case DataType.Byte:
    case DataType.Int16:
    case DataType.UInt16:
    case DataType.Int32:
    case DataType.UInt32:
    case DataType.Double:
      return x as number;
    case DataType.Float:
      // 32 bits on the wire: 1211.4 arrives as 1211.4000244140625. Keep the shortest decimal.
      return float32Shortest(x as number);
    case DataType.Int64:
    case DataType.UInt64: {
      // node-opcua gives [high, low] 32-bit words.
      const [hi, lo] = x as [number, number];
      const high = type === DataType.Int64 ? hi | 0 : hi >>> 0;
      return high * 2 ** 32 + (lo >>> 0);
    }
    case DataType.DateTime:
      return (x as Date).toISOString();
    case DataType.LocalizedText:
      return (x as { text?: string | null }).text ?? '';
    case DataType.QualifiedName:
      return (x as { name?: string | null }).name ?? '';
    case DataType.ByteString:
      return (x as Buffer).toString('base64');
    case DataType.StatusCode:
      return (x as { name: string }).name;
    default:
      // A long text goes to the normaliser whole: it cuts it between code points to the event's
      // bound and marks the value uncertain, where a cut here would pass for a good value.
      return typeof x === 'string' ? x : String(x);
  }
}
