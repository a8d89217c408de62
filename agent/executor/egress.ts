/**
 * Egress policy of http steps: which destinations the agent connects to.
 *
 * Rules come from `--http-allow` and `--http-deny` (config keys `httpAllow`,
 * `httpDeny`). Each is a CIDR (`10.0.0.0/8`, `fd00::/8`), a single IP, or a
 * host pattern (`api.internal`, or `*.example.com` for any name below
 * example.com but not example.com itself). A host pattern matches the URL's
 * host name; a CIDR or IP matches the addresses connected to. A destination
 * (host name and every address it resolves to) is refused when, in order:
 *
 * 1. an `--http-deny` rule matches it: deny wins over allow;
 * 2. an address is in {@link DEFAULT_DENY} (link-local, cloud metadata) and no
 *    `--http-allow` CIDR or IP contains it: a host pattern does not lift the
 *    default, so a name that resolves to the metadata service stays refused;
 * 3. any `--http-allow` rule is given and none matches it.
 *
 * The check runs on the address actually connected to: {@link EgressPolicy.lookup}
 * is the `lookup` of node's http/https request, resolves once, refuses if any
 * address is refused and hands the checked addresses to the socket, so there
 * is no second resolution to rebind. Node connects to IP literals without
 * calling `lookup`: check those with {@link EgressPolicy.refusal} first.
 * IPv4-mapped IPv6 addresses (`::ffff:169.254.169.254`) are matched as the
 * IPv4 address they carry.
 */
import { lookup as dnsLookup } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * Denied unless an `--http-allow` CIDR or IP names them: IPv4 and IPv6
 * link-local, where cloud metadata services answer (169.254.169.254), and the
 * IPv6 address of the AWS metadata service.
 */
export const DEFAULT_DENY: readonly string[] = ['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254', '64:ff9b::a9fe:0/112'];

/** A `--http-allow` or `--http-deny` value that is neither a CIDR, an IP nor a host pattern. */
export class EgressRuleError extends Error {
  override name = 'EgressRuleError';
  readonly code = 'BAD_EGRESS_RULE';
}

/** An http step's destination that the agent's egress policy refuses; the message names host, address, rule and the flag to change. */
export class EgressDeniedError extends Error {
  override name = 'EgressDeniedError';
  readonly code = 'EGRESS_DENIED';
  constructor(
    message: string,
    readonly host: string,
    readonly address: string,
  ) {
    super(message);
  }
}

type Rule = { text: string; net: BlockList } | { text: string; host: string; wildcard: boolean };

/** Rules as given on the command line or in the config file. */
export interface EgressRules {
  allow?: string[];
  deny?: string[];
}

const HOST_PATTERN = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

/**
 * The canonical text of an IP address: lower case, IPv6 compressed, and an
 * IPv4-mapped IPv6 address as its IPv4 address. Anything else is returned as is.
 */
export function normalizeAddress(address: string): string {
  const bare = address.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare) !== 6) return bare;
  // The WHATWG URL parser prints IPv6 canonically: ::ffff:a9fe:a9fe for every spelling of ::ffff:169.254.169.254.
  const canonical = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped) return canonical;
  const hi = parseInt(mapped[1], 16);
  const lo = parseInt(mapped[2], 16);
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}

function familyOf(address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

/** One rule: `flag` names where it came from in the error. */
export function parseRule(text: string, flag: string): Rule {
  const value = text.trim().toLowerCase();
  const slash = value.indexOf('/');
  // A CIDR keeps its family (BlockList matches ::ffff:0:0/96 subnets and IPv4 ones alike); a single IP is normalised.
  const ip = slash < 0 ? normalizeAddress(value) : value.slice(0, slash).replace(/^\[(.*)\]$/, '$1');
  if (isIP(ip)) {
    const net = new BlockList();
    const max = isIP(ip) === 4 ? 32 : 128;
    if (slash < 0) {
      net.addAddress(ip, familyOf(ip));
      return { text: ip, net };
    }
    const prefix = value.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) {
      throw new EgressRuleError(`${flag} "${text}": the prefix length must be a whole number from 0 to ${max} (for example 10.0.0.0/8 or fd00::/8)`);
    }
    net.addSubnet(ip, Number(prefix), familyOf(ip));
    return { text: value, net };
  }
  const host = value.replace(/\.$/, '');
  if (slash >= 0 || !HOST_PATTERN.test(host)) {
    throw new EgressRuleError(
      `${flag} "${text}" is not a CIDR (10.0.0.0/8, fd00::/8), an IP address or a host pattern (api.internal, *.example.com); to match every address use 0.0.0.0/0 and ::/0`,
    );
  }
  return host.startsWith('*.') ? { text: value, host: host.slice(1), wildcard: true } : { text: value, host, wildcard: false };
}

function matches(rule: Rule, host: string, address: string): boolean {
  if ('net' in rule) return rule.net.check(address, familyOf(address));
  return rule.wildcard ? host.endsWith(rule.host) : host === rule.host;
}

/** The compiled egress policy of one agent; see the file header for its rules. */
export class EgressPolicy {
  private readonly allow: Rule[];
  private readonly deny: Rule[];
  private readonly defaults: Rule[];

  /** Throws {@link EgressRuleError} on a rule it cannot read. */
  constructor(rules: EgressRules = {}) {
    this.allow = (rules.allow ?? []).map((r) => parseRule(r, '--http-allow'));
    this.deny = (rules.deny ?? []).map((r) => parseRule(r, '--http-deny'));
    this.defaults = DEFAULT_DENY.map((r) => parseRule(r, 'default'));
  }

  /** Why connecting to `address` for a request to `host` is refused, or undefined when it is allowed. */
  refusal(host: string, address: string): EgressDeniedError | undefined {
    const name = host.replace(/^\[(.*)\]$/, '$1').toLowerCase().replace(/\.$/, '');
    const addr = normalizeAddress(address);
    const h = isIP(name) ? normalizeAddress(name) : name;
    const where = h === addr ? addr : `${h} (${addr})`;
    const refuse = (why: string) => new EgressDeniedError(`http step refused to connect to ${where}: ${why}`, h, addr);
    const denied = this.deny.find((r) => matches(r, h, addr));
    if (denied) return refuse(`the agent's --http-deny ${denied.text} denies it, and deny wins over --http-allow; remove that rule from the agent's --http-deny (httpDeny in its config file) to allow it`);
    const byDefault = this.defaults.find((r) => matches(r, h, addr));
    if (byDefault && !this.allow.some((r) => 'net' in r && matches(r, h, addr))) {
      return refuse(`${byDefault.text} (link-local and cloud metadata addresses) is denied by default; start the agent with --http-allow ${addr} to allow it`);
    }
    if (this.allow.length && !this.allow.some((r) => matches(r, h, addr))) {
      const hint = h === addr ? addr : `${h} or --http-allow ${addr}`;
      return refuse(`it matches none of the agent's --http-allow rules (${this.allow.map((r) => r.text).join(', ')}); start the agent with --http-allow ${hint} to allow it`);
    }
    return undefined;
  }

  /**
   * `lookup` for node's http/https request: resolves `hostname` once (every
   * address), fails with {@link EgressDeniedError} if any address is refused,
   * and gives the socket the addresses it checked.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, options.all ? [] : '', undefined);
      for (const a of addresses) {
        const refused = this.refusal(hostname, a.address);
        if (refused) return callback(refused, options.all ? [] : '', undefined);
      }
      if (options.all) return callback(null, addresses);
      if (!addresses.length) return callback(new Error(`${hostname} resolves to no address`), '', undefined);
      callback(null, addresses[0].address, addresses[0].family);
    });
  };
}
