/**
 * The dashboard end to end in a real browser: a real control plane with its
 * HTTP port, two real agents, Debian's chromium driven by playwright-core.
 * Runs are launched with the SDK; the page must follow them over its one
 * WebSocket (never reloaded), show logs, hide Cancel from a viewer, and let
 * an operator cancel. Screenshots land in test-artifacts/dashboard/.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, workflowFile, waitFor, type ServerProc } from '../helpers/cluster.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = resolve(import.meta.dirname, '../..');
const ARTIFACTS = join(ROOT, 'test-artifacts/dashboard');
const BUILT = join(ROOT, 'dist/control-plane/dashboard/index.html');
/** Without the background-networking flags chromium keeps dialling Google's hosts, which this closed network refuses. */
const CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** How long the page may take to show what the server pushed (2 cores shared with other work). */
const SEEN_MS = 20_000;

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI !== 'true') process.stderr.write(`dashboard tests skipped: ${CHROMIUM} is missing (install it with scripts/setup-test-deps.sh)\n`);

let server: ServerProc;
let admin: DroverClient;
let browser: Browser;
let url: string;
let viewerToken: string;
let operatorToken: string;
const dir = tempDir('drover-dashboard-');

const workflow = (name: string, text: string) => workflowFile(dir, name, text);

async function openPage(token: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => process.stderr.write(`dashboard page error: ${e.message}\n`));
  await page.goto(`${url}#token=${encodeURIComponent(token)}`);
  return page;
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });

describe.skipIf(!haveChromium && process.env.CI !== 'true')('dashboard - in a real browser', () => {
  beforeAll(async () => {
    if (!haveChromium) throw new Error(`${CHROMIUM} is missing: CI must install chromium (scripts/setup-test-deps.sh); the dashboard test never skips under CI=true`);
    if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: run \`npm run build\` first (it builds the dashboard)`);
    mkdirSync(ARTIFACTS, { recursive: true });
    server = await startServer({ args: ['--http', '127.0.0.1:0', '--http-plain'] });
    url = await waitFor(() => /dashboard on (http:\/\/\S+?)\/?(\s|$)/.exec(server.output())?.[1], 15_000, () => `dashboard address:\n${server.output()}`);
    url = `${url}/`;
    startAgent(server, 'dash-a', { tier: 'edge', role: 'directory', proxy: 'lab' });
    startAgent(server, 'dash-b', { tier: 'edge', role: 'assets' });
    admin = new DroverClient(server.clientOptions);
    await waitFor(async () => (await admin.fleet.list()).filter((a) => a.state === 'connected').length === 2, 20_000, () => 'two agents to connect');
    viewerToken = (await admin.access.createToken('viewer', { description: 'dashboard test viewer' })).token;
    operatorToken = (await admin.access.createToken('operator', { description: 'dashboard test operator' })).token;
    // playwright gives every launch a fresh, empty temporary profile (its own --user-data-dir).
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('dashboard - a viewer sees both agents, follows a run with a fan-out to green without a reload, and reads a step\'s logs', async () => {
    await admin.devices.add({ name: 'sw-1', host: '10.0.0.9', user: 'admin', credential: 'sw', network: 'lab', labels: { kind: 'switch' } });
    const page = await openPage(viewerToken);
    await expect.poll(() => page.locator('[data-testid=agent][data-state=connected]').count(), { timeout: SEEN_MS }).toBe(2);
    expect(await page.locator('[data-testid=agent]').evaluateAll((els) => els.map((e) => e.getAttribute('data-agent')))).toEqual(['dash-a', 'dash-b']);
    expect(await page.locator('[data-testid=whoami]').textContent()).toMatch(/viewer/);
    expect(await page.locator('[data-testid=device]').allTextContents()).toEqual([expect.stringMatching(/^sw-1\s*10\.0\.0\.9:22.*lab.*kind=switch.*dash-a$/)]);
    await page.fill('input[type=search]', 'role=assets');
    await expect.poll(() => page.locator('[data-testid=agent]').evaluateAll((els) => els.map((e) => e.getAttribute('data-agent'))), { timeout: SEEN_MS }).toEqual(['dash-b']);
    await page.fill('input[type=search]', '');
    await shot(page, 'fleet');
    await page.evaluate(() => Object.assign(window, { notReloaded: true }));

    await page.click('a[href="#/runs"]');
    const file = workflow(
      'demo.yaml',
      `name: dash-demo
params:
  ticket: { type: string, default: OPS-1 }
  go: { type: string }
steps:
  - id: prepare
    target: { agent: dash-a }
    env: { GO: "\${{ params.go }}" }
    run: |
      echo "preparing the fleet"
      for i in $(seq 600); do [ -f "$GO" ] && break; sleep 0.1; done
  - id: fan
    needs: [prepare]
    target: { labels: { tier: edge }, strategy: all }
    run: |
      echo "hello from $DROVER_AGENT"
      echo "a warning on stderr" >&2
  - id: report
    needs: [fan]
    target: { agent: dash-b }
    run: echo "report done"
`,
    );
    // prepare holds until the page has shown the run in flight: no race with a slow browser.
    const go = join(dir, 'go');
    const handle = await admin.runs.launch(file, { ticket: 'OPS-42', go });
    const row = page.locator(`[data-testid=run-row][data-run="${handle.id}"]`);
    await row.waitFor({ timeout: SEEN_MS });
    expect(await row.textContent()).toContain('ticket=OPS-42');
    expect(await row.textContent()).toContain(handle.id);
    await shot(page, 'runs');
    await row.click();

    const node = (step: string) => page.locator(`[data-testid=dag-node][data-step="${step}"]`);
    await node('report').waitFor({ timeout: SEEN_MS });
    expect(await page.locator('[data-testid=dag-node]').evaluateAll((els) => els.map((e) => e.getAttribute('data-step')).sort())).toEqual(['fan', 'prepare', 'report']);
    await expect.poll(() => node('prepare').getAttribute('data-tone'), { timeout: SEEN_MS }).toBe('running');
    expect(await node('report').getAttribute('data-tone')).toBe('pending');
    expect(await node('fan').textContent()).toContain('×2');
    await shot(page, 'run-live');
    writeFileSync(go, '');
    await expect
      .poll(() => page.locator('[data-testid=dag-node]').evaluateAll((els) => els.map((e) => e.getAttribute('data-tone'))), { timeout: 60_000 })
      .toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(await page.locator('[data-testid=run-status]').textContent()).toBe('succeeded');
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    expect(await page.locator('[data-testid=step-counts]').first().textContent()).toBe('4/4');

    await node('prepare').click();
    await expect.poll(() => page.locator('[data-testid=logs]').textContent(), { timeout: SEEN_MS }).toContain('preparing the fleet');
    await node('fan').click();
    await expect.poll(() => page.locator('[data-testid=logs] [data-stream=stdout]').allTextContents(), { timeout: SEEN_MS }).toEqual(
      expect.arrayContaining([expect.stringContaining('hello from dash-a'), expect.stringContaining('hello from dash-b')]),
    );
    expect(await page.locator('[data-testid=logs] [data-stream=stderr]').allTextContents()).toEqual([
      expect.stringContaining('a warning on stderr'),
      expect.stringContaining('a warning on stderr'),
    ]);
    expect(await page.locator('[data-testid=cancel]').count()).toBe(0);
    await shot(page, 'run');
    await page.context().close();
  });

  it('dashboard - a viewer sees no Cancel button; an operator cancels a long run from the page', async () => {
    const file = workflow(
      'long.yaml',
      `name: dash-long
steps:
  - id: wait
    target: { agent: dash-a }
    run: |
      echo "waiting a long time"
      sleep 120
`,
    );
    const handle = await admin.runs.launch(file);
    await waitFor(async () => (await admin.runs.get(handle.id)).status === 'running', 20_000, () => 'the long run to start');

    const viewer = await openPage(viewerToken);
    await viewer.evaluate((id) => (location.hash = `#/runs/${id}`), handle.id);
    await expect.poll(() => viewer.locator('[data-testid=run-status]').textContent(), { timeout: SEEN_MS }).toBe('running');
    expect(await viewer.locator('[data-testid=cancel]').count()).toBe(0);
    await viewer.context().close();

    const operator = await openPage(operatorToken);
    await operator.locator('[data-testid=whoami]').filter({ hasText: 'operator' }).waitFor({ timeout: SEEN_MS });
    await operator.evaluate((id) => (location.hash = `#/runs/${id}`), handle.id);
    const cancel = operator.locator('[data-testid=cancel]');
    await cancel.waitFor({ timeout: SEEN_MS });
    let asked = '';
    operator.once('dialog', (d) => {
      asked = d.message();
      void d.accept();
    });
    await cancel.click();
    await expect.poll(() => operator.locator('[data-testid=run-status]').textContent(), { timeout: SEEN_MS }).toBe('cancelled');
    expect(asked).toContain(`Cancel run ${handle.id}`);
    expect(await cancel.count()).toBe(0);
    expect((await admin.runs.get(handle.id)).status).toBe('cancelled');
    await shot(operator, 'cancelled');
    await operator.context().close();
  });

  it('dashboard - an approval given from the CLI shows live; an approver rejects another from the page; a viewer not among the approvers gets no buttons', async () => {
    const file = workflow(
      'gate.yaml',
      `name: dash-gate
params: { ticket: { type: string, default: CHG-7 } }
steps:
  - { id: build, target: { agent: dash-a }, run: echo built }
  - id: go-live
    needs: [build]
    approval: { approvers: [operator], message: "Release \${{ params.ticket }}?", timeout: 1h }
  - { id: ship, needs: [go-live], target: { agent: dash-b }, run: echo shipped }
`,
    );
    const open = async () => {
      const h = await admin.runs.launch(file);
      await waitFor(async () => (await admin.runs.get(h.id)).steps.find((s) => s.id === 'go-live')?.status === 'running', 20_000, () => 'the gate to open');
      return h.id;
    };
    const first = await open();
    const viewer = await openPage(viewerToken);
    await viewer.evaluate((id) => (location.hash = `#/runs/${id}`), first);
    const vGate = viewer.locator('[data-testid=approval][data-step=go-live]');
    await vGate.waitFor({ timeout: SEEN_MS });
    expect(await vGate.locator('[data-testid=approval-message]').textContent()).toBe('Release CHG-7?');
    expect(await vGate.textContent()).toMatch(/waiting for operator \(and above\) · times out \d\d:\d\d/);
    await vGate.locator('[data-testid=approval-not-yours]').waitFor({ timeout: SEEN_MS });
    expect(await vGate.locator('[data-testid=approve]').count()).toBe(0);
    await shot(viewer, 'approval-waiting');

    // Given from the CLI while the page watches: the decision and the run's end arrive on the feed, no reload.
    const res = await cli(['approve', first, 'go-live', '--reason', 'window open'], { ...server.env, DROVER_TOKEN: operatorToken });
    expect(res.code, res.stderr).toBe(0);
    await expect.poll(() => vGate.getAttribute('data-decision'), { timeout: SEEN_MS }).toBe('approved');
    expect(await vGate.locator('[data-testid=approval-decision]').textContent()).toMatch(/^approved by [0-9a-f]{12}: window open$/);
    await expect.poll(() => viewer.locator('[data-testid=run-status]').textContent(), { timeout: SEEN_MS }).toBe('succeeded');
    await shot(viewer, 'approval-approved');
    await viewer.context().close();

    const second = await open();
    const operator = await openPage(operatorToken);
    await operator.locator('[data-testid=whoami]').filter({ hasText: 'operator' }).waitFor({ timeout: SEEN_MS });
    await operator.evaluate((id) => (location.hash = `#/runs/${id}`), second);
    const oGate = operator.locator('[data-testid=approval][data-step=go-live]');
    await oGate.locator('[data-testid=reject]').waitFor({ timeout: SEEN_MS });
    await oGate.locator('[data-testid=approval-reason]').fill('not during the freeze');
    await oGate.locator('[data-testid=reject]').click();
    await expect.poll(() => oGate.getAttribute('data-decision'), { timeout: SEEN_MS }).toBe('rejected');
    await expect.poll(() => operator.locator('[data-testid=run-status]').textContent(), { timeout: SEEN_MS }).toBe('failed');
    const done = await admin.runs.get(second);
    expect(done.steps.find((s) => s.id === 'go-live')!.approval).toMatchObject({ decision: 'rejected', reason: 'not during the freeze' });
    const audit = (await admin.audit.list({ action: 'RunService/DecideApproval' })).filter((r) => r.target === `${second}/go-live`);
    expect(audit).toEqual([expect.objectContaining({ result: 'ok', detail: { decision: 'reject', reason: 'not during the freeze', id: second } })]);
    await operator.context().close();
  });

  it('dashboard - a re-run shows the run it re-ran, and its reused steps marked as not run again', async () => {
    const file = workflow('rerun.yaml', 'name: dash-rerun\nsteps:\n  - { id: first, target: { agent: dash-a }, run: "true" }\n  - { id: second, needs: [first], target: { agent: dash-b }, run: "true" }\n');
    const old = await (await admin.runs.launch(file)).wait();
    const again = await admin.runs.rerun(old.id, { from: 'second' });
    expect((await again.wait()).status).toBe('succeeded');
    const page = await openPage(viewerToken);
    await page.evaluate((id) => (location.hash = `#/runs/${id}`), again.id);
    await expect.poll(() => page.locator('[data-testid=rerun-of]').textContent(), { timeout: SEEN_MS }).toBe(`re-run of ${old.id}`);
    await expect.poll(() => page.locator('[data-testid=step-row][data-step=first] [data-testid=reused-tag]').count(), { timeout: SEEN_MS }).toBe(1);
    expect(await page.locator('[data-testid=step-row][data-step=second] [data-testid=reused-tag]').count()).toBe(0);
    expect(await page.locator('[data-testid=dag-node]').allTextContents()).toEqual([expect.stringMatching(/first.*reused/), expect.not.stringMatching(/reused/)]);
    await page.click('[data-testid=rerun-of] a');
    await expect.poll(() => page.evaluate(() => location.hash), { timeout: SEEN_MS }).toBe(`#/runs/${old.id}`);
    await page.context().close();
  });

  it('dashboard - the metrics page shows the four metrics of each workflow that ran, with a trend', async () => {
    const page = await openPage(viewerToken);
    await page.locator('[data-testid=whoami]').filter({ hasText: 'viewer' }).waitFor({ timeout: SEEN_MS });
    await page.click('a[href="#/metrics"]');
    const demo = page.locator('[data-testid=workflow-stats][data-workflow=dash-demo]');
    await demo.waitFor({ timeout: SEEN_MS });
    const text = await demo.textContent();
    expect(text).toContain('1 ended');
    expect(text).toMatch(/completion\s*100%/i);
    expect(await page.locator('[data-testid=workflow-stats][data-workflow=dash-long]').textContent()).toMatch(/0 ok · 0 failed\s*1 cancelled/);
    expect(await demo.locator('svg.trend rect').count()).toBeGreaterThan(0);
    await shot(page, 'metrics');
    await page.context().close();
  });

  it('dashboard - when the control plane goes away the page shows a reconnecting banner, and comes back by itself when it returns', async () => {
    const page = await openPage(viewerToken);
    await expect.poll(() => page.locator('[data-testid=agent]').count(), { timeout: SEEN_MS }).toBe(2);
    await page.evaluate(() => Object.assign(window, { notReloaded: true }));
    const port = new URL(url).port;
    await server.stop();
    await page.locator('[data-testid=reconnecting]').waitFor({ timeout: SEEN_MS });
    expect(await page.locator('[data-testid=reconnecting]').textContent()).toContain('reconnecting');
    await shot(page, 'reconnecting');
    server = await startServer({ dataDir: server.dataDir, args: ['--http', `127.0.0.1:${port}`, '--http-plain'] });
    // the page retries at most 5 s apart: a restart on a loaded machine plus one wait.
    await page.locator('[data-testid=reconnecting]').waitFor({ state: 'detached', timeout: 30_000 });
    await expect.poll(() => page.locator('[data-testid=agent]').count(), { timeout: SEEN_MS }).toBe(2);
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    await page.context().close();
  });
});
