/** Workflow triggers in the compiler (common/workflow/compiler/triggers.ts): shape, cron, time zone, CEL, names. */
import { describe, expect, it } from 'vitest';
import { compile } from '../../common/workflow/compiler/compile.js';

const doc = (triggers: string) => `name: hr
params:
  username: { type: string }
  role: { type: string, default: engineer }
triggers:
${triggers}
steps:
  - id: a
    run: "true"
`;

const problems = (triggers: string) => compile({ source: doc(triggers), params: {}, mode: 'validate' }).problems.filter((p) => p.severity === 'error').map((p) => `${p.path}: ${p.message}`);

describe('triggers compile', () => {
  it('triggers compile - webhook, cron and nats triggers compile with their defaults', () => {
    const res = compile({
      source: doc(`  - webhook: { name: hr-new-hire, secret: HR_HOOK_SECRET, params: { username: "body.user.login" }, idempotencyKey: "body.event_id" }
  - cron: "0 2 * * *"
    timezone: Europe/Berlin
    params: { username: nightly }
  - cron: "*/5 * * * *"
    catchup: all
    params: { username: bob }
  - nats: { subject: "alarms.>", params: { username: "body.user" } }`),
      params: {},
      mode: 'validate',
    });
    expect(res.problems.filter((p) => p.severity === 'error')).toEqual([]);
    expect(res.triggers).toEqual([
      { kind: 'webhook', name: 'hr-new-hire', secret: 'HR_HOOK_SECRET', params: { username: 'body.user.login' }, idempotencyKey: 'body.event_id', toleranceMs: 300_000 },
      { kind: 'cron', name: 'hr', cron: '0 2 * * *', timezone: 'Europe/Berlin', catchup: 'none', params: { username: 'nightly' } },
      { kind: 'cron', name: 'hr-2', cron: '*/5 * * * *', timezone: 'UTC', catchup: 'all', params: { username: 'bob' } },
      { kind: 'nats', subject: 'alarms.>', params: { username: 'body.user' }, idempotencyKey: '' },
    ]);
  });

  it('triggers compile - bad cron, time zone, CEL, unknown params, two kinds and repeated names are errors at their paths', () => {
    expect(problems('  - cron: "61 * * * *"')[0]).toMatch(/^triggers\[0\]\.cron: "61 \* \* \* \*" is not a cron expression/);
    expect(problems('  - cron: "* * *"')).toEqual(['triggers[0].cron: "* * *" has 3 fields: a cron expression has 5 (minute hour day month weekday) or 6 (seconds first)']);
    expect(problems('  - { cron: "0 2 * * *", timezone: Mars/Olympus }')[0]).toMatch(/^triggers\[0\]\.timezone: unknown time zone "Mars\/Olympus"/);
    expect(problems('  - webhook: { name: h, secret: S, params: { username: "body.user.(" } }')[0]).toMatch(/^triggers\[0\]\.webhook\.params\.username: not a CEL expression/);
    expect(problems('  - webhook: { name: h, secret: S, params: { nope: "body.x" } }')).toEqual(['triggers[0].webhook.params.nope: "nope" is not a param of this workflow (its params: username, role)']);
    expect(problems('  - { cron: "0 2 * * *", webhook: { name: h, secret: S } }')).toEqual(['triggers[0]: a trigger has one of cron, webhook or nats, not cron and webhook']);
    expect(problems('  - { webhook: { name: h, secret: S }, timezone: UTC }')).toEqual(['triggers[0].timezone: "timezone" belongs to cron triggers; a webhook trigger sets its params under webhook.params']);
    expect(problems('  - webhook: { name: h, secret: S }\n  - webhook: { name: h, secret: T }')).toEqual(['triggers[1].webhook.name: trigger name "h" is already used by triggers[0]']);
    expect(problems('  - { cron: "0 2 * * *", params: { username: x }, tz: UTC }')[0]).toMatch(/^triggers\[0\]/);
  });

  it('triggers compile - a NATS subject must be valid and must not reach the control plane\'s own subjects', () => {
    const subject = (s: string) => problems(`  - nats: { subject: "${s}" }`);
    for (const ok of ['alarms.>', 'alarms.*.power', 'hr.new-hire', 'a']) expect(subject(ok), ok).toEqual([]);
    expect(subject('drover.v1.agent.>')).toEqual(['triggers[0].nats.subject: "drover.v1.agent.>" is under drover., which belongs to drover and NATS themselves; choose another first token, like alarms.>']);
    expect(subject('>')[0]).toMatch(/starts with a wildcard, which would also match the control plane's own subjects/);
    expect(subject('*.power')[0]).toMatch(/starts with a wildcard/);
    expect(subject('_INBOX.x')[0]).toMatch(/under _INBOX\./);
    expect(subject('$SYS.x')[0]).toMatch(/under \$SYS\./);
    expect(subject('alarms..x')[0]).toMatch(/empty token/);
    expect(subject('alarms.')[0]).toMatch(/empty token/);
    expect(subject('alarms.>.x')[0]).toMatch(/wildcards are whole tokens/);
    expect(subject('alarms.po*')[0]).toMatch(/wildcards are whole tokens/);
    expect(subject('alarms rack')[0]).toMatch(/whitespace/);
  });
});
