import { afterEach, describe, expect, it } from 'vitest';
import { setListenerErrorHandler, Topic } from '../../control-plane/events.js';

describe('events', () => {
  afterEach(() => setListenerErrorHandler(undefined));

  it('events - a listener that throws costs the others nothing; the handler gets the error', () => {
    const t = new Topic<number>();
    const got: number[] = [];
    const errors: string[] = [];
    t.subscribe(() => {
      throw new Error('a closed stream');
    });
    t.subscribe((n) => got.push(n));
    setListenerErrorHandler((err) => errors.push((err as Error).message));
    t.publish(1);
    expect(got).toEqual([1]);
    expect(errors).toEqual(['a closed stream']);
  });

  it('events - without a handler the first error is thrown after every listener had the change', () => {
    const t = new Topic<number>();
    const got: number[] = [];
    t.subscribe(() => {
      throw new Error('first');
    });
    t.subscribe((n) => got.push(n));
    expect(() => t.publish(2)).toThrow('first');
    expect(got).toEqual([2]);
  });
});
