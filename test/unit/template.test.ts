import { describe, expect, it } from 'vitest';
import { celValue, TEMPLATE } from '../../common/template.js';

describe('template', () => {
  it('template - each ${{ }} is found with its expression, the shortest match, across lines', () => {
    const found = [...'a ${{ params.x }} b ${{ steps["s-1"]\n.outputs.y }}} c'.matchAll(TEMPLATE)].map((m) => m[1]);
    expect(found).toEqual([' params.x ', ' steps["s-1"]\n.outputs.y ']);
  });

  it('template - CEL sees whole numbers as ints at any depth; fractions, strings and booleans stay as they are', () => {
    expect(celValue({ n: 3, f: 1.5, s: '3', b: true, list: [1, { m: 2 }], none: null })).toEqual({ n: 3n, f: 1.5, s: '3', b: true, list: [1n, { m: 2n }], none: null });
  });
});
