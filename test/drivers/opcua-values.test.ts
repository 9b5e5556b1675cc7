/** OPC UA status codes to quality, and variants to reading values: pure, no server. */
import { DataType, LocalizedText, StatusCodes, Variant, VariantArrayType } from 'node-opcua';
import { describe, expect, it } from 'vitest';
import { convertVariant, qualityOf } from '../../src/drivers/opcua/values.ts';

describe('status code severity to quality', () => {
  it('good, uncertain and bad by the top two bits', () => {
    expect(qualityOf(StatusCodes.Good.value)).toBe('good');
    expect(qualityOf(StatusCodes.GoodNoData.value)).toBe('good');
    expect(qualityOf(StatusCodes.UncertainLastUsableValue.value)).toBe('uncertain');
    expect(qualityOf(StatusCodes.UncertainSensorNotAccurate.value)).toBe('uncertain');
    expect(qualityOf(StatusCodes.BadNodeIdUnknown.value)).toBe('bad');
    expect(qualityOf(StatusCodes.BadWaitingForInitialData.value)).toBe('bad');
    expect(qualityOf(0xc000_0000)).toBe('bad'); // severity 11 is bad too
  });
});

describe('variant to reading value', () => {
  const v = (dataType: DataType, value: unknown, arrayType = VariantArrayType.Scalar) =>
    convertVariant(new Variant({ dataType, value, arrayType }));

  it('scalars keep their JavaScript type', () => {
    expect(v(DataType.Boolean, true)).toBe(true);
    expect(v(DataType.UInt32, 42)).toBe(42);
    expect(v(DataType.Double, 25.004)).toBe(25.004);
    expect(v(DataType.Float, 1.5)).toBe(1.5);
    expect(v(DataType.String, 'LOT-1')).toBe('LOT-1');
    expect(convertVariant(new Variant({ dataType: DataType.Null }))).toBeNull();
    expect(convertVariant(undefined)).toBeNull();
  });

  it('64-bit integers become exact numbers within 2^53', () => {
    expect(v(DataType.UInt64, [1, 5])).toBe(2 ** 32 + 5);
    expect(v(DataType.Int64, [0xffff_ffff, 0xffff_fffe])).toBe(-2);
  });

  it('dates, texts, names and bytes become text', () => {
    expect(v(DataType.DateTime, new Date(Date.UTC(2026, 0, 5, 6)))).toBe('2026-01-05T06:00:00.000Z');
    expect(v(DataType.LocalizedText, new LocalizedText({ text: 'Spindel', locale: 'de' }))).toBe('Spindel');
    expect(v(DataType.ByteString, Buffer.from([1, 2, 3]))).toBe('AQID');
  });

  it('arrays become JSON text, refused beyond 1024 characters', () => {
    expect(v(DataType.Double, new Float64Array([1, 2.5]), VariantArrayType.Array)).toBe('[1,2.5]');
    // Float elements as their shortest decimals, like a scalar Float (issue 14, item 7).
    expect(v(DataType.Float, new Float32Array([270.2, 0.1]), VariantArrayType.Array)).toBe('[270.2,0.1]');
    const big = v(DataType.Double, new Float64Array(500).fill(123.456), VariantArrayType.Array);
    expect(big).toEqual({ problem: 'array value longer than 1024 characters' });
  });
});
