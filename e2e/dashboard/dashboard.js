// Drives the built-in dashboard in headless Chromium (Debian's chromium,
// through playwright-core) against a running test app. Run by
// e2e/dashboard_test.go, which started the instances named below; it
// prints "ok <step>" per step and "PASS" at the end, and exits non-zero
// on the first failure.
//
//   node e2e/dashboard/dashboard.js   (configured by the environment)
//   DASH_BASE      the app's base URL, e.g. http://127.0.0.1:7071
//   DASH_KEY       the app's function key
//   DASH_CHROMIUM  the chromium executable
//   DASH_SHOT      where to write the instance page's screenshot (PNG)
//   DASH_ORCH, DASH_WAIT, DASH_TERM, DASH_XSS   instance IDs
//   DASH_RETRY     a finished TypedErrors instance (retries, failures, a child)
//   DASH_COUNTER   the key of a Counter entity holding 5
//   DASH_PURGE     an instance-ID prefix holding two finished Echo instances
//                  and one waiting Waiter (<prefix>wait)
//   DASH_SHOT_RETRY  optional: a screenshot of the DASH_RETRY page
//   DASH_CRASH     an instance ID the script starts as CrashTest, whose Step
//                  "two" runs until the file DASH_CRASHDIR/release exists
//   DASH_CRASHDIR  the app's CRASHTEST_DIR
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`environment variable ${k} is not set`);
  return v;
};
const base = env('DASH_BASE');
const ids = { orch: env('DASH_ORCH'), wait: env('DASH_WAIT'), term: env('DASH_TERM'), xss: env('DASH_XSS'), retry: env('DASH_RETRY') };
const T = 20000;

function ok(step, detail) { console.log('ok ' + step + (detail ? ': ' + detail : '')); }
function check(cond, msg) { if (!cond) throw new Error(msg); }

async function statusIn(page, sel) { return (await page.locator(sel).innerText()).trim(); }

async function openInstance(page, id) {
  await page.goto(base + '/api/durabletask/ui/#/instances/' + encodeURIComponent(id));
  await page.locator('#instance-id').filter({ hasText: id }).waitFor({ timeout: T });
}

(async () => {
  const browser = await chromium.launch({ executablePath: env('DASH_CHROMIUM'), headless: true, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));

    // "/" redirects to the dashboard, which asks for the key once.
    await page.goto(base + '/');
    check(new URL(page.url()).pathname === '/api/durabletask/ui/', 'opening / landed on ' + page.url());
    await page.locator('#key-form').waitFor({ timeout: T });
    await page.fill('#key', 'wrong-key');
    await page.click('#key-form button[type=submit]');
    await page.locator('#key-form .answer.error').waitFor({ timeout: T });
    await page.fill('#key', env('DASH_KEY'));
    await page.click('#key-form button[type=submit]');
    await page.locator('#filters').waitFor({ timeout: T });
    check(!page.url().includes(env('DASH_KEY')), 'the key is in the URL ' + page.url());
    ok('key asked once', 'a wrong key is refused in place, the right one opens the list');

    // The list, filtered by prefix, shows the instances with their status.
    const prefix = ids.orch.replace(/-orch$/, '-');
    await page.fill('#f-prefix', prefix);
    await page.click('#filters button[type=submit]');
    const row = (id) => page.locator(`#instances tr[data-id="${id}"]`);
    const want = { [ids.orch]: 'Completed', [ids.wait]: 'Running', [ids.term]: 'Running', [ids.xss]: 'Completed' };
    for (const [id, st] of Object.entries(want)) {
      await row(id).locator('.st', { hasText: st }).waitFor({ timeout: T });
    }
    // Only the four under the prefix (the hub has six instances).
    await page.waitForFunction(() => document.querySelectorAll('#instances tr[data-id]').length === 4, null, { timeout: T });
    await page.locator('#counts [data-status=Running]', { hasText: '2' }).waitFor({ timeout: T });
    await page.locator('#counts [data-status=Completed]', { hasText: '2' }).waitFor({ timeout: T });
    ok('list', Object.entries(want).map(([i, s]) => i + '=' + s).join(' '));

    // A status filter narrows the list.
    await page.selectOption('#f-status', 'Running');
    await page.click('#filters button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#instances tr[data-id]').length === 2, null, { timeout: T });
    await page.selectOption('#f-status', '');
    await page.click('#filters button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#instances tr[data-id]').length === 4, null, { timeout: T });
    ok('status filter', 'Running shows 2 of 4');

    // A created-time range in the future matches nothing.
    await page.fill('#f-from', '2099-01-01T00:00:00');
    await page.click('#filters button[type=submit]');
    await page.locator('#instances td', { hasText: 'No instance matches.' }).waitFor({ timeout: T });
    await page.fill('#f-from', '');
    // Paging without a filter: the hub holds nine instances.
    await page.fill('#f-prefix', '');
    await page.selectOption('#f-top', '5');
    await page.click('#filters button[type=submit]');
    const pageIDs = () => page.evaluate(() => [...document.querySelectorAll('#instances tr[data-id]')].map((r) => r.dataset.id).join(' '));
    await page.waitForFunction(() => document.querySelectorAll('#instances tr[data-id]').length === 5, null, { timeout: T });
    const first = await pageIDs();
    check(await page.isDisabled('#prev') && !(await page.isDisabled('#next')), 'pager buttons on page 1');
    await page.click('#next');
    await page.waitForFunction(() => document.querySelectorAll('#instances tr[data-id]').length === 4, null, { timeout: T });
    const second = await pageIDs();
    check(second.split(' ').every((id) => !first.split(' ').includes(id)), `pages overlap: ${first} / ${second}`);
    await page.click('#prev');
    await page.waitForFunction((want) => [...document.querySelectorAll('#instances tr[data-id]')].map((r) => r.dataset.id).join(' ') === want, first, { timeout: T });
    await page.selectOption('#f-top', '20');
    await page.fill('#f-prefix', prefix);
    await page.click('#filters button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#instances tr[data-id]').length === 4, null, { timeout: T });
    ok('time range and paging', 'a future range matches none; 9 instances in pages of 5 and 4');

    // The Orchestrator instance: three Hello bars on the timeline.
    await row(ids.orch).locator('a').click();
    await page.locator('#instance-id').filter({ hasText: ids.orch }).waitFor({ timeout: T });
    await page.locator('#timeline').waitFor({ timeout: T });
    const bars = page.locator('#timeline .bar.activity[data-label="Hello"]');
    check(await bars.count() === 3, `timeline has ${await bars.count()} Hello bars, want 3`);
    const titles = await bars.evaluateAll((bs) => bs.map((b) => b.getAttribute('title')));
    check(titles.every((t) => /^activity Hello: [\d.]+ (ms|s)$/.test(t)), 'bar titles: ' + titles.join(' | '));
    const output = await page.locator('#panel-output').innerText();
    check(output.includes('"Hello Tokyo!"') && output.includes('"Hello London!"'), 'output panel: ' + output);
    const hist = await page.locator('#history tbody tr').count();
    check(hist >= 5, `history table has ${hist} rows`);
    await page.screenshot({ path: env('DASH_SHOT'), fullPage: true });
    ok('timeline', titles.join(' | '));

    // An action the API refuses shows its message in place; the page goes on.
    await page.fill('#event-name', 'Go');
    await page.fill('#event-data', '"late"');
    await page.click('#raise');
    await page.locator('#action-answer.error').waitFor({ timeout: T });
    const refused = await page.locator('#action-answer').innerText();
    check(/^Raise event .*: 410: /.test(refused), 'refused answer: ' + refused);
    await page.fill('#event-data', '{not json');
    await page.click('#raise');
    await page.locator('#action-answer.error', { hasText: 'not JSON' }).waitFor({ timeout: T });
    ok('errors in place', refused.split('\n')[0]);

    // Raise the event the Waiter waits for: it completes with the data.
    await openInstance(page, ids.wait);
    await page.locator('#instance-status', { hasText: 'Running' }).waitFor({ timeout: T });
    const before = dialogs.length;
    await page.fill('#event-name', 'Go');
    await page.fill('#event-data', '{"from":"dashboard"}');
    await page.click('#raise');
    await page.locator('#action-answer.ok', { hasText: '202' }).waitFor({ timeout: T });
    check(dialogs.length === before + 1 && dialogs[before].startsWith('Raise event "Go" to instance'), 'confirm dialog: ' + dialogs[before]);
    await page.locator('#instance-status', { hasText: 'Completed' }).waitFor({ timeout: T });
    check((await page.locator('#panel-output').innerText()).includes('"dashboard"'), 'waiter output');
    await page.locator('#timeline .bar.event[data-label="event Go"]').waitFor({ timeout: T });
    ok('raise event', 'confirmed, 202, live update to Completed');

    // Terminate the other one.
    await openInstance(page, ids.term);
    await page.fill('#reason', 'stopped from the dashboard');
    await page.click('#terminate');
    await page.locator('#action-answer.ok', { hasText: '202' }).waitFor({ timeout: T });
    await page.locator('#instance-status', { hasText: 'Terminated' }).waitFor({ timeout: T });
    check((await page.locator('#panel-output').innerText()).includes('stopped from the dashboard'), 'terminated output');
    ok('terminate', 'confirmed, 202, live update to Terminated');

    // Back in the list (its filter kept), the statuses changed.
    await page.click('header nav a[href="#/"]');
    check(await page.inputValue('#f-prefix') === prefix, 'the list lost its filter');
    await row(ids.wait).locator('.st', { hasText: 'Completed' }).waitFor({ timeout: T });
    await row(ids.term).locator('.st', { hasText: 'Terminated' }).waitFor({ timeout: T });
    ok('list after actions', `${ids.wait}=Completed ${ids.term}=Terminated`);

    // Output holding markup is shown as text; no script of it runs.
    await openInstance(page, ids.xss);
    const xssOut = await page.locator('#panel-output').innerText();
    check(xssOut.includes('<script>window.__xss=1</script>') && xssOut.includes('<img src=x onerror='), 'output panel: ' + xssOut);
    await page.goto(base + '/api/durabletask/ui/#/');
    await row(ids.xss).waitFor({ timeout: T });
    const flag = await page.evaluate(() => [window.__xss, document.querySelectorAll('main script, main img').length]);
    check(flag[0] === undefined && flag[1] === 0, 'injected markup ran or was parsed: ' + JSON.stringify(flag));
    ok('xss', 'output shown as text, window.__xss unset');

    // Retries, failures and a sub-orchestration on the timeline.
    await openInstance(page, ids.retry);
    await page.locator('#instance-status', { hasText: 'Completed' }).waitFor({ timeout: T });
    const charges = await page.locator('#timeline .bar.activity[data-label="Charge"]').evaluateAll((bs) =>
      bs.map((b) => ({ failed: b.classList.contains('failed'), title: b.getAttribute('title') })));
    const summary = charges.map((c) => (c.failed ? 'failed ' : 'ok ') + c.title).join(' | ');
    check(charges.length === 4 && charges.filter((c) => c.failed).length === 3, 'Charge bars: ' + summary);
    check(/attempt 1\): .* failed: .*gateway busy/.test(charges[0].title) && /attempt 3\): [\d.]+ (ms|s)$/.test(charges[2].title) && !/attempt/.test(charges[3].title), 'Charge attempts: ' + summary);
    // The policy waits 200 ms before each retry (backoff coefficient 1).
    const timers = await page.locator('#timeline .bar.timer:not(.pending)').evaluateAll((bs) => bs.map((b) => b.getAttribute('title')));
    const waits = timers.map((x) => { const m = /^timer: ([\d.]+) (ms|s)$/.exec(x); return m ? Number(m[1]) * (m[2] === 's' ? 1000 : 1) : NaN; });
    check(waits.length === 2 && waits.every((w) => w >= 190), 'retry timers: ' + timers.join(' | '));
    if (process.env.DASH_SHOT_RETRY) await page.screenshot({ path: process.env.DASH_SHOT_RETRY, fullPage: true });
    const child = page.locator('#timeline a.bar.suborchestration.failed[data-label="ChargeChild"]');
    check(await child.count() === 1, 'no failed ChargeChild bar');
    await child.click();
    await page.locator('#instance-id').filter({ hasText: ids.retry + '-child' }).waitFor({ timeout: T });
    check((await page.locator('#instance-name').innerText()) === 'ChargeChild', 'the child link opened another instance');
    ok('retries', summary + ' | ' + timers.join(' | '));

    // Entities: listed with their state, and signalled from the page.
    await page.locator('#nav-entities:not([hidden])').click();
    const ekey = env('DASH_COUNTER');
    const erow = page.locator('#entities tr', { hasText: ekey });
    await erow.waitFor({ timeout: T });
    check((await erow.innerText()).toLowerCase().includes('counter') && (await erow.locator('td.state').innerText()).trim() === '5', 'entity row: ' + (await erow.innerText()));
    await page.fill('#sig-name', 'Counter');
    await page.fill('#sig-key', ekey);
    await page.fill('#sig-op', 'add');
    await page.fill('#sig-input', '2');
    await page.click('#signal-form button[type=submit]');
    await page.locator('#signal-answer.ok', { hasText: '202' }).waitFor({ timeout: T });
    await page.locator('#entities tr', { hasText: ekey }).locator('td.state', { hasText: /^7$/ }).waitFor({ timeout: T });
    ok('entities', `Counter/${ekey}: 5, signalled add 2, 7`);

    // Suspend and resume a waiting instance.
    const purgePrefix = env('DASH_PURGE');
    await openInstance(page, purgePrefix + 'wait');
    await page.locator('#instance-status', { hasText: 'Running' }).waitFor({ timeout: T });
    await page.fill('#reason', 'paused by the dashboard');
    await page.click('#suspend');
    await page.locator('#instance-status', { hasText: 'Suspended' }).waitFor({ timeout: T });
    await page.click('#resume');
    await page.locator('#instance-status', { hasText: 'Running' }).waitFor({ timeout: T });
    await page.locator('#history tbody tr', { hasText: 'ExecutionResumed' }).waitFor({ timeout: T });
    ok('suspend and resume', 'Running, Suspended, Running');

    // Restart the Orchestrator under a new ID: the answer links to it.
    await openInstance(page, ids.orch);
    await page.click('#restart');
    await page.locator('#restarted-link').click();
    await page.locator('#instance-status', { hasText: 'Completed' }).waitFor({ timeout: T });
    const restarted = (await page.locator('#instance-id').innerText()).trim();
    check(restarted !== ids.orch && (await page.locator('#instance-name').innerText()) === 'Orchestrator', 'restarted as ' + restarted);
    await page.click('#purge');
    await page.locator('#action-answer.ok', { hasText: '"instancesDeleted":1' }).waitFor({ timeout: T });
    ok('restart and purge', `restarted as ${restarted}, then purged it`);

    // Bulk purge by the list's filter: counted first, then confirmed.
    await page.click('header nav a[href="#/"]');
    await page.fill('#f-prefix', purgePrefix);
    await page.click('#filters button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#instances tr[data-id]').length === 3, null, { timeout: T });
    const asked = dialogs.length;
    await page.click('#bulk-purge');
    await page.locator('#purge-answer.ok', { hasText: '"instancesDeleted":2' }).waitFor({ timeout: T });
    check(/^Purge 2 finished instance\(s\) matching the filter\?/.test(dialogs[asked]), 'bulk purge asked: ' + dialogs[asked]);
    await page.waitForFunction(() => document.querySelectorAll('#instances tr[data-id]').length === 1, null, { timeout: T });
    await row(purgePrefix + 'wait').waitFor({ timeout: T });
    ok('bulk purge', dialogs[asked].split('?')[0] + '; the waiting one stays');

    // A step still running: a striped bar to now, "running since" on hover,
    // growing with the live updates; released, it is drawn finished. Started
    // here, after the list's counts and pages were checked.
    const crash = env('DASH_CRASH');
    const started = await page.request.post(base + '/api/durabletask/orchestrators/CrashTest/' + encodeURIComponent(crash), { headers: { 'x-functions-key': env('DASH_KEY') } });
    check(started.status() === 202, 'starting CrashTest answered ' + started.status());
    await openInstance(page, crash);
    await page.waitForFunction(() => {
      const n = (sel) => document.querySelectorAll('#timeline .bar.activity[data-label="Step"]' + sel).length;
      return n('.running') === 1 && n(':not(.running)') === 1;
    }, null, { timeout: T }).catch(async (e) => { throw new Error('want Step one finished and Step two running: ' + (await page.locator('#timeline').innerText()) + ' ' + e.message); });
    const runningBar = page.locator('#timeline .bar.activity.running[data-label="Step"]');
    const runTitle = await runningBar.getAttribute('title');
    check(/^activity Step: running since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?Z \([\d.]+ (ms|s) so far\)$/.test(runTitle), 'running bar title: ' + runTitle);
    await page.waitForFunction((before) => { const b = document.querySelector('#timeline .bar.activity.running[data-label="Step"]'); return b && b.getAttribute('title') !== before; }, runTitle, { timeout: T });
    const laterTitle = await runningBar.getAttribute('title');
    check((await page.locator('#instance-status').innerText()).trim() === 'Running', 'CrashTest is not Running');
    fs.writeFileSync(path.join(env('DASH_CRASHDIR'), 'release'), '');
    await page.locator('#instance-status', { hasText: 'Completed' }).waitFor({ timeout: T });
    await page.waitForFunction(() => {
      const n = (sel) => document.querySelectorAll('#timeline .bar.activity[data-label="Step"]' + sel).length;
      return n('') === 3 && n('.running') === 0 && n('.pending') === 0;
    }, null, { timeout: T });
    ok('running step', `${runTitle} | then ${laterTitle} | released: 3 Step bars finished`);

    check(pageErrors.length === 0, 'page errors: ' + pageErrors.join('; '));
    console.log('PASS');
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error('FAIL ' + (e && e.stack ? e.stack : e)); process.exit(1); });
