/**
 * The control plane address a client dials: HOST:PORT, as `--server`,
 * DROVER_ADDR and the CLI config file's `server` take it. Anything else
 * (a URL, a host without its port) is refused before dialling, with the
 * form it should have taken: gRPC would only report that nothing answered.
 */
import { InvalidInputError } from './errors.js';

const DEFAULT_PORT = 7400;

/** `address` unchanged when it is HOST:PORT (IPv6 in brackets); otherwise an InvalidInputError suggesting the corrected form. */
export function checkAddress(address: string): string {
  const trimmed = address.trim();
  const url = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(.*)$/i.exec(trimmed);
  const hostPort = url ? url[2].replace(/^[^@]*@/, '') : trimmed;
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+)(?::(\d{1,5}))?$/.exec(hostPort);
  const port = m?.[2] === undefined ? undefined : Number(m[2]);
  const valid = port !== undefined && port >= 1 && port <= 65535;
  if (!url && m && valid) return trimmed;
  const suggestion = `${m ? m[1] : '127.0.0.1'}:${valid ? port : DEFAULT_PORT}`;
  const why = url ? `it takes HOST:PORT without a scheme (drover speaks gRPC, not ${url[1]}://)` : m && port === undefined ? 'it needs the port' : 'it takes HOST:PORT';
  throw new InvalidInputError(`"${address}" is not a control plane address: ${why}; use ${suggestion}`, {
    hint: `--server, DROVER_ADDR and the config file's "address" take HOST:PORT, e.g. --server ${suggestion}`,
  });
}
