import { describe, expect, it } from 'vitest';
import { encodeParams, InvalidInputError, parseParamArgs } from '../../sdk/index.js';

describe('sdk params', () => {
  it('params - parses key=value pairs, keeping = and spaces in values', () => {
    expect(parseParamArgs(['username=alice', 'query=a=b c', 'empty='])).toEqual({ username: 'alice', query: 'a=b c', empty: '' });
  });

  it('params - collects a repeated key into a list', () => {
    expect(parseParamArgs(['tag=a', 'tag=b', 'tag=c'])).toEqual({ tag: ['a', 'b', 'c'] });
  });

  it('params - rejects an argument without =', () => {
    const run = () => parseParamArgs(['username']);
    expect(run).toThrow(InvalidInputError);
    expect(run).toThrow('invalid param "username": expected key=value');
  });

  it('params - rejects an empty or malformed key', () => {
    expect(() => parseParamArgs(['=alice'])).toThrow('invalid param "=alice": expected key=value');
    expect(() => parseParamArgs(['1x=y'])).toThrow(InvalidInputError);
  });

  it('params - encodes numbers and booleans as text and lists as JSON', () => {
    expect(encodeParams({ n: 3, ok: true, name: 'bob', groups: ['a', 'b'] })).toEqual({
      n: '3',
      ok: 'true',
      name: 'bob',
      groups: '["a","b"]',
    });
  });

  it('params - refuses values of other types', () => {
    const run = () => encodeParams({ bad: { x: 1 } as unknown as string });
    expect(run).toThrow(InvalidInputError);
    expect(run).toThrow('param bad: expected a string, number, boolean or string array, got object');
  });
});
