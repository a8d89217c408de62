/**
 * The request of an http step, on node:http/https rather than fetch so that
 * the egress policy sees the address each socket connects to (see
 * egress.ts). Redirects are followed here, each hop checked again; a body is
 * read only up to its cap, then the connection is dropped.
 */
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { EgressPolicy } from './egress.js';

/** Redirects one http step follows; one more fails the step (fetch and curl stop at 20 and 50: steps call APIs, not browsers). */
export const MAX_REDIRECTS = 5;

/** Statuses followed when they carry a Location header, as fetch does. */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Headers kept when a redirect leaves the origin the step named: every other one the step set (a token, an API key) stays behind. */
const CROSS_ORIGIN_HEADERS = ['accept', 'user-agent', 'content-type'];

/** Why an http step's request cannot be made or finished (besides an egress refusal or a network error). */
export class HttpStepError extends Error {
  override name = 'HttpStepError';
  constructor(
    message: string,
    readonly code: 'BAD_URL' | 'TOO_MANY_REDIRECTS',
  ) {
    super(message);
  }
}

/** What an http step asks for, templates already rendered. */
export interface HttpRequestSpec {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** Sent unless the method is GET or HEAD, or a 303 turned it into a GET. */
  body: string;
}

/** The last response of a request, after redirects. */
export interface HttpExchange {
  url: URL;
  status: number;
  statusText: string;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** At most `maxBodyBytes` of the body. */
  body: Buffer;
  /** The body was longer than `maxBodyBytes` and was not read to its end. */
  truncated: boolean;
}

/** How the request is made: the agent's policy, the step's timeout and cancel, the body cap. */
export interface HttpRequestOptions {
  egress: EgressPolicy;
  /** Aborts the request and the body read (step timeout, cancel). */
  signal: AbortSignal;
  /** Body bytes kept; the connection is dropped once one more arrives. */
  maxBodyBytes: number;
  /** One line per redirect followed. */
  onRedirect(line: string): void;
}

/** `url` parsed, or a step failure that says why. */
export function parseHttpUrl(text: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(text, base);
  } catch {
    throw new HttpStepError(`"${text}" is not a URL`, 'BAD_URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new HttpStepError(`only http and https URLs are supported, got ${url.protocol}`, 'BAD_URL');
  return url;
}

/** Makes the request, follows up to {@link MAX_REDIRECTS} redirects, and reads the final body up to its cap. */
export async function httpExchange(spec: HttpRequestSpec, opts: HttpRequestOptions): Promise<HttpExchange> {
  let url = parseHttpUrl(spec.url);
  const origin = url.origin;
  let method = spec.method;
  let body = spec.body && !['GET', 'HEAD'].includes(method) ? spec.body : undefined;
  let headers = withDefaults(spec.headers, body !== undefined);
  for (let redirects = 0; ; redirects++) {
    const res = await send(url, method, headers, body, opts);
    const location = res.headers.location;
    if (!REDIRECT_STATUSES.has(res.statusCode ?? 0) || !location) return readCapped(url, res, opts.maxBodyBytes);
    res.destroy();
    if (redirects === MAX_REDIRECTS) throw new HttpStepError(`too many redirects (more than ${MAX_REDIRECTS}); the last was ${url.href} -> ${location}`, 'TOO_MANY_REDIRECTS');
    const next = parseHttpUrl(location, url);
    opts.onRedirect(`${method} ${url.href} -> ${res.statusCode} ${res.statusMessage ?? ''}, redirected to ${next.href}\n`);
    if (res.statusCode === 303 && method !== 'HEAD') {
      method = 'GET';
      body = undefined;
      headers = without(headers, ['content-type', 'content-length']);
    }
    if (next.origin !== origin) {
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => CROSS_ORIGIN_HEADERS.includes(k.toLowerCase())));
      // Nor does the body (307/308 would send it on).
      if (body !== undefined) {
        method = method === 'HEAD' ? 'HEAD' : 'GET';
        body = undefined;
        headers = without(headers, ['content-type']);
      }
    }
    url = next;
  }
}

/** The headers fetch would add when the step does not set them. */
function withDefaults(given: Record<string, string>, hasBody: boolean): OutgoingHttpHeaders {
  const names = new Set(Object.keys(given).map((k) => k.toLowerCase()));
  const out: OutgoingHttpHeaders = { ...given };
  if (!names.has('accept')) out.accept = '*/*';
  if (!names.has('user-agent')) out['user-agent'] = 'drover-agent';
  if (hasBody && !names.has('content-type')) out['content-type'] = 'text/plain;charset=UTF-8';
  return out;
}

function without(headers: OutgoingHttpHeaders, names: string[]): OutgoingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !names.includes(k.toLowerCase())));
}

/** One hop: the policy is checked before connecting (IP literal) or in the socket's lookup (host name). */
function send(url: URL, method: string, headers: OutgoingHttpHeaders, body: string | undefined, opts: HttpRequestOptions): Promise<IncomingMessage> {
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  // Node connects to an IP literal without calling `lookup`.
  const refused = isIP(hostname) ? opts.egress.refusal(hostname, hostname) : undefined;
  if (refused) return Promise.reject(refused);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request({
      protocol: url.protocol,
      hostname,
      port: url.port || undefined,
      path: `${url.pathname}${url.search}`,
      method,
      headers,
      signal: opts.signal,
      lookup: opts.egress.lookup,
      // No pooled sockets: every connection goes through the policy.
      agent: false,
    });
    // Kept after the response: an error while the body is read must not go unhandled.
    req.on('error', reject);
    req.once('response', resolve);
    req.end(body);
  });
}

/** Reads at most `cap` + 1 bytes of the body, then drops the connection. */
async function readCapped(url: URL, res: IncomingMessage, cap: number): Promise<HttpExchange> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size > cap) break;
    }
  } finally {
    res.destroy();
  }
  const all = Buffer.concat(chunks);
  const headers = Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v ?? '')]));
  return { url, status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers, body: all.subarray(0, cap), truncated: size > cap };
}
