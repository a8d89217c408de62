/**
 * Clients of the control plane's HTTP port for integration tests: requests
 * with the exact path given (no normalisation, for traversal attempts), the
 * Prometheus text parsed, and a /ws feed client that keeps every message.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import parsePrometheusTextFormat, { type PromFamily } from 'parse-prometheus-text-format';
import WebSocket from 'ws';
import { waitFor, type ServerProc } from './cluster.js';

/** The URL a server printed for its HTTP port (`drover server dashboard on URL`). */
export async function dashboardUrl(server: ServerProc): Promise<string> {
  return waitFor(() => /dashboard on (\S+)/.exec(server.output())?.[1], 15_000, () => `the HTTP port:\n${server.output()}`);
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** GET `path` exactly as given; `ca` verifies HTTPS. */
export function get(base: string, path: string, opts: { token?: string; ca?: string } = {}): Promise<HttpAnswer> {
  const url = new URL(base);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: 'GET',
        headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
        ...(opts.ca ? { ca: readFileSync(opts.ca) } : {}),
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** One sample's value, by metric name and labels (every label given must match); undefined when absent. */
export function sample(s: Scrape, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of s.families.filter((x) => x.name === name)) {
    const m = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
    if (m) return Number(m.value);
  }
  return undefined;
}

export interface Scrape {
  /** The text as served. */
  text: string;
  /** Its metric families; each histogram as its untyped `_bucket`, `_sum` and `_count` samples. */
  families: PromFamily[];
  /** Metric name -> TYPE, as the text declares it. */
  types: Map<string, string>;
}

/**
 * Scrapes /metrics with `token` and parses the text. The parser flattens a
 * histogram into one label-less entry (as prom2json does), which loses a
 * labelled histogram's series, so histograms' HELP and TYPE lines are left
 * out of what it parses: their lines then come back as plain samples.
 */
export async function scrape(base: string, token: string, ca?: string): Promise<Scrape> {
  const res = await get(base, '/metrics', { token, ca });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${res.body}`);
  const types = new Map([...res.body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
  const kept = res.body.split('\n').filter((line) => {
    const m = /^# (?:TYPE|HELP) (\S+)/.exec(line);
    return !(m && types.get(m[1]) === 'histogram');
  });
  return { text: res.body, families: parsePrometheusTextFormat(kept.join('\n')), types };
}

export type FeedMessage = { type: string } & Record<string, unknown>;

/** A /ws client that keeps every message it got and waits for the one a test expects. */
export class FeedClient {
  readonly messages: FeedMessage[] = [];
  closed: { code: number; reason: string } | undefined;
  private readonly ws: WebSocket;
  private readonly opened: Promise<void>;

  constructor(base: string, ca?: string) {
    const url = base.replace(/^http/, 'ws') + 'ws';
    this.ws = new WebSocket(url, ca ? { ca: readFileSync(ca) } : {});
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.on('message', (data) => this.messages.push(JSON.parse(String(data)) as FeedMessage));
    this.ws.on('close', (code, reason) => (this.closed = { code, reason: String(reason) }));
  }

  async send(msg: object | string): Promise<void> {
    await this.opened;
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** The first message (from `from` on) that `pred` accepts. */
  async next(pred: (m: FeedMessage) => boolean, what: string, timeoutMs = 15_000, from = 0): Promise<FeedMessage> {
    return waitFor(() => this.messages.slice(from).find(pred), timeoutMs, () => `${what}; got ${JSON.stringify(this.messages).slice(-3000)}`);
  }

  async closedWith(timeoutMs = 15_000): Promise<{ code: number; reason: string }> {
    return waitFor(() => this.closed, timeoutMs, () => `the feed to close; got ${JSON.stringify(this.messages).slice(-2000)}`);
  }

  close(): void {
    this.ws.terminate();
  }
}
