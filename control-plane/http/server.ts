/**
 * The control plane's HTTP port (`--http HOST:PORT`): `/healthz`, `/metrics`
 * (Prometheus text for a viewer token), the dashboard's static files, its
 * WebSocket feed at `/ws`, and webhooks at `POST /hooks/<name>`
 * (triggers/webhooks.ts: signed, not token-authenticated). HTTPS with the server's own certificate unless
 * `--http-plain` (loopback only, checked by config.ts). What needs which
 * role: docs/security.md.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ConfigError } from '../../common/errors.js';
import type { Logger } from '../log.js';
import { bearer, type HttpAuth } from './auth.js';
import { FeedConnection, type FeedDeps } from './feed.js';
import type { DroverMetrics } from './prometheus.js';
import { DASHBOARD_DIR, serveStatic } from './static.js';
import type { Webhooks } from '../triggers/webhooks.js';

/** Feed clients at once; past it an upgrade is answered 503. */
const MAX_CLIENTS = 256;
/** Feed clients from one peer address at once, so that one peer cannot take every place (a dashboard needs one per tab). */
const MAX_CLIENTS_PER_PEER = 32;
/** The socket's own message limit: a longer frame closes the connection (1009). Shorter ones over the feed's limit get an error. */
export const WS_MAX_PAYLOAD = 256 * 1024;
/** Request headers are at most this big (Node's default, said here because webhooks are open to the network): past it, 431. */
const MAX_HEADER_BYTES = 16 * 1024;
/** A request whose headers have not all arrived by then is dropped (408). */
const HEADERS_TIMEOUT_MS = 10_000;

/** A feed client that answers no ping for this long is dropped (a laptop that went to sleep). */
const PING_MS = 30_000;

export interface HttpOptions {
  /** host:port; port 0 picks one. */
  listen: string;
  /** Server certificate (with the CA after it) and key; absent: plain HTTP. */
  tls?: { cert: string; key: string };
  auth: HttpAuth;
  metrics: DroverMetrics;
  feed: Omit<FeedDeps, 'auth'>;
  log: Logger;
  /** The dashboard's files (default: beside this module in dist). */
  dashboardDir?: string;
  /** Serves POST /hooks/<name> (absent: 404). */
  hooks?: Webhooks;
}

export interface HttpPort {
  /** host:port as bound. */
  address: string;
  /** http(s)://ADDR/ */
  url: string;
  close(): Promise<void>;
}

/** The address part of a socket's remote address (IPv4-mapped IPv6 shown as IPv4). */
function peerOf(req: IncomingMessage): string {
  return (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
}

/** Page headers: the app loads only its own files and talks only to this origin's feed. */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

export async function startHttp(o: HttpOptions): Promise<HttpPort> {
  const deps: FeedDeps = { ...o.feed, auth: o.auth };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    void route(o, req, res).catch((err: unknown) => {
      o.log.error({ err, url: req.url }, 'HTTP request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('internal error\n');
    });
  };
  const limits = { maxHeaderSize: MAX_HEADER_BYTES };
  const server: Server = o.tls ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key, ...limits }, handler) : createHttpServer(limits, handler);
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  const wss = new WebSocketServer({ noServer: true, maxPayload: WS_MAX_PAYLOAD });
  const alive = new WeakSet<WebSocket>();
  /** Open and opening feed sockets per peer address. */
  const perPeer = new Map<string, number>();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // A peer that resets during the handshake must not become an unhandled 'error'.
    socket.on('error', () => socket.destroy());
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path !== '/ws') return void socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    const peer = peerOf(req);
    const fromPeer = perPeer.get(peer) ?? 0;
    if (wss.clients.size >= MAX_CLIENTS || fromPeer >= MAX_CLIENTS_PER_PEER) return void socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
    perPeer.set(peer, fromPeer + 1);
    socket.once('close', () => {
      const n = (perPeer.get(peer) ?? 1) - 1;
      if (n > 0) perPeer.set(peer, n);
      else perPeer.delete(peer);
    });
    wss.handleUpgrade(req, socket, head, (ws) => {
      alive.add(ws);
      ws.on('pong', () => alive.add(ws));
      new FeedConnection(ws, peer, deps);
    });
  });
  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.has(ws)) ws.terminate();
      else {
        alive.delete(ws);
        ws.ping();
      }
    }
  }, PING_MS);
  pinger.unref();
  const [host, port] = [o.listen.replace(/:\d+$/, '').replace(/^\[|\]$/g, ''), Number(/:(\d+)$/.exec(o.listen)![1])];
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException) => {
    const why = err.code === 'EADDRINUSE' ? 'the address is already in use' : err.code === 'EADDRNOTAVAIL' ? 'the address is not one of this machine' : err.message;
    throw new ConfigError(`cannot listen on ${o.listen} for --http: ${why}; choose another address with --http HOST:PORT (or leave --http out)`);
  });
  server.on('error', (err) => o.log.error({ err }, 'HTTP port error'));
  const bound = server.address();
  const boundPort = typeof bound === 'object' && bound ? bound.port : port;
  const address = o.listen.replace(/:\d+$/, `:${boundPort}`);
  return {
    address,
    url: `${o.tls ? 'https' : 'http'}://${address}/`,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(pinger);
        for (const ws of wss.clients) ws.terminate();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function route(o: HttpOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  if (path.startsWith('/hooks/')) {
    if (o.hooks) return o.hooks.handle(req, res, path.slice('/hooks/'.length), peerOf(req));
    res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' });
    return void res.end(`${JSON.stringify({ error: { code: 'WEBHOOK_NOT_FOUND', message: 'this control plane serves no webhooks', hint: '' } })}\n`);
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    return void res.end('only GET and HEAD are served here\n');
  }
  if (path === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    return void res.end('ok\n');
  }
  if (path === '/metrics') return metrics(o, req, res);
  if (path === '/ws') {
    res.writeHead(426, { upgrade: 'websocket', 'content-type': 'text/plain; charset=utf-8' });
    return void res.end('/ws is the dashboard feed: connect with a WebSocket client\n');
  }
  if (/\.html$|^\/$/.test(path)) for (const [k, v] of Object.entries(PAGE_HEADERS)) res.setHeader(k, v);
  if (serveStatic(req, res, path, o.dashboardDir ?? DASHBOARD_DIR)) return;
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
  res.end('not found\n');
}

async function metrics(o: HttpOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const token = bearer(req.headers.authorization);
  const verdict = await o.auth.check(token, 'viewer', peerOf(req), 'HTTP/metrics');
  if (!verdict.ok) {
    const status = verdict.code === 'PERMISSION_DENIED' ? 403 : 401;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': 'Bearer realm="drover"', 'cache-control': 'no-store' });
    return void res.end(`${verdict.code}: ${verdict.message}\nhint: ${verdict.hint}\n`);
  }
  const { text, contentType } = await o.metrics.scrape();
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : text);
}
