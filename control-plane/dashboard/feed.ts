/**
 * The one WebSocket to the control plane (`/ws` on the page's own origin).
 * It authenticates with the token, re-sends the current subscriptions after
 * every (re)connect, and reconnects with a growing delay when the link drops;
 * a refused token stops it, since retrying the same token cannot help.
 */
import type { ClientMessage, ServerMessage, Subscription, Topic } from './messages.js';

/** First reconnect delay; each failed attempt doubles it up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5_000;
/** Close code the server uses for a missing or refused token. */
const CLOSE_UNAUTHENTICATED = 4401;

export type LinkState = 'connecting' | 'open' | 'reconnecting' | 'refused';

export interface FeedEvents {
  message(m: ServerMessage): void;
  link(state: LinkState, detail?: string): void;
}

export class Feed {
  private ws: WebSocket | null = null;
  private readonly subs = new Map<Topic, Subscription>();
  private delay = RETRY_MIN_MS;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private authed = false;
  private refusal = '';

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly on: FeedEvents,
  ) {}

  start(): void {
    this.stopped = false;
    this.connect('connecting');
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close();
    this.ws = null;
  }

  /** Subscribes now (when connected) and again after each reconnect; replaces an earlier subscription to the same topic. */
  subscribe(sub: Subscription): void {
    this.subs.set(sub.topic, sub);
    this.send(sub);
  }

  unsubscribe(topic: Topic): void {
    if (this.subs.delete(topic)) this.send({ type: 'unsubscribe', topic });
  }

  /** Sends a request that is not a subscription (a cancel); false when the link is down. */
  request(m: ClientMessage): boolean {
    return this.send(m);
  }

  private send(m: ClientMessage): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.authed) return false;
    this.ws.send(JSON.stringify(m));
    return true;
  }

  private connect(state: LinkState): void {
    this.on.link(state);
    this.authed = false;
    this.refusal = '';
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: this.token } satisfies ClientMessage));
    ws.onmessage = (ev) => {
      let m: ServerMessage;
      try {
        m = JSON.parse(String(ev.data)) as ServerMessage;
      } catch {
        return;
      }
      if (m.type === 'hello') {
        this.authed = true;
        this.delay = RETRY_MIN_MS;
        this.on.link('open');
        this.on.message(m);
        for (const sub of this.subs.values()) this.send(sub);
        return;
      }
      if (m.type === 'error' && m.code === 'UNAUTHENTICATED') {
        this.refusal = m.hint ? `${m.message} (${m.hint})` : m.message;
        return;
      }
      this.on.message(m);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      if (ev.code === CLOSE_UNAUTHENTICATED || this.refusal) {
        this.stopped = true;
        this.on.link('refused', this.refusal || ev.reason || 'the server refused this token');
        return;
      }
      this.timer = setTimeout(() => this.connect('reconnecting'), this.delay);
      this.delay = Math.min(this.delay * 2, RETRY_MAX_MS);
      this.on.link('reconnecting');
    };
  }
}

/** The feed's address for this page: same host, ws:// or wss:// to match http(s). */
export function feedUrl(loc: Location): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/ws`;
}
