import { describe, expect, it } from 'vitest';
import { checkAddress } from '../../sdk/address.js';
import { DroverClient, InvalidInputError } from '../../sdk/index.js';

const refusal = (address: string): InvalidInputError => {
  try {
    checkAddress(address);
  } catch (err) {
    return err as InvalidInputError;
  }
  throw new Error(`${address} was accepted`);
};

describe('sdk address - HOST:PORT or a refusal naming the form', () => {
  it('sdk address - HOST:PORT, a name and a bracketed IPv6 address are taken as they are', () => {
    expect(['127.0.0.1:7400', 'cp.example.com:443', '[::1]:7400', ' localhost:7500 '].map(checkAddress)).toEqual(['127.0.0.1:7400', 'cp.example.com:443', '[::1]:7400', 'localhost:7500']);
  });

  it('sdk address - a URL is refused with its HOST:PORT suggested', () => {
    const err = refusal('http://127.0.0.1:7400');
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.message).toBe('"http://127.0.0.1:7400" is not a control plane address: it takes HOST:PORT without a scheme (drover speaks gRPC, not http://); use 127.0.0.1:7400');
    expect(err.hint).toBe('--server, DROVER_ADDR and the config file\'s "address" take HOST:PORT, e.g. --server 127.0.0.1:7400');
    expect(refusal('https://cp.example.com/').message).toMatch(/use cp\.example\.com:7400$/);
  });

  it('sdk address - a host without its port, or a bad port, is refused', () => {
    expect(refusal('127.0.0.1').message).toBe('"127.0.0.1" is not a control plane address: it needs the port; use 127.0.0.1:7400');
    expect(refusal('127.0.0.1:99999').message).toBe('"127.0.0.1:99999" is not a control plane address: it takes HOST:PORT; use 127.0.0.1:7400');
    expect(refusal('').message).toMatch(/use 127\.0\.0\.1:7400$/);
  });

  it('sdk address - the client refuses a bad address before dialling', () => {
    expect(() => new DroverClient({ address: 'http://127.0.0.1:7400' })).toThrow(/not a control plane address/);
  });
});
