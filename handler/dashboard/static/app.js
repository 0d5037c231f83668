// The Durable Functions dashboard. Plain JavaScript, no framework: every
// value that comes from the API is put on the page with textContent or as
// an element built with createElement, never parsed as HTML.

// The management API is the folder above the dashboard's: /api/durabletask.
const API = location.pathname.replace(/\/ui(\/.*)?$/, '');
const KEY_STORE = 'durable-dashboard-key';
const STATUSES = ['Pending', 'Running', 'Completed', 'ContinuedAsNew', 'Failed', 'Canceled', 'Terminated', 'Suspended'];
const FINISHED = ['Completed', 'Failed', 'Canceled', 'Terminated'];
const LIVE = ['Pending', 'Running', 'Suspended', 'ContinuedAsNew'];
const POLL_MS = 2000;

const main = document.getElementById('main');
let timer = null; // the current view's poll
let view = 0; // bumped on every navigation, so stale answers are dropped

// ---- small DOM helpers ----

// el builds an element; text children become text nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function statusBadge(s) {
  return el('span', { class: 'status ' + (STATUSES.includes(s) ? s : 'unknown') }, s || '?');
}

function instanceHref(id) { return '#/instances/' + encodeURIComponent(id); }

function fmtTime(s) {
  if (!s) return '';
  const d = new Date(s);
  return isNaN(d) ? String(s) : d.toISOString().replace('T', ' ').replace('.000Z', 'Z');
}

function fmtDuration(ms) {
  if (!isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  if (ms < 3600000) return Math.floor(ms / 60000) + ' min ' + Math.round((ms % 60000) / 1000) + ' s';
  return (ms / 3600000).toFixed(1) + ' h';
}

// jsonView renders a JSON value as a collapsible tree (details/summary).
function jsonView(v, depth = 0) {
  if (v === null) return el('span', { class: 'b' }, 'null');
  if (typeof v === 'string') return el('span', { class: 's' }, JSON.stringify(v));
  if (typeof v === 'number') return el('span', { class: 'n' }, String(v));
  if (typeof v === 'boolean') return el('span', { class: 'b' }, String(v));
  const isArr = Array.isArray(v);
  const entries = isArr ? v.map((x, i) => [i, x]) : Object.entries(v);
  if (entries.length === 0) return el('span', {}, isArr ? '[]' : '{}');
  const d = el('details', { open: depth < 2 },
    el('summary', {}, isArr ? `[${entries.length}]` : `{${entries.length}}`));
  for (const [k, x] of entries) {
    d.append(el('div', {}, isArr ? '' : el('span', { class: 'k' }, JSON.stringify(k) + ': '), jsonView(x, depth + 1)));
  }
  return d;
}

function jsonPanel(title, v) {
  return el('div', { class: 'panel' }, el('h3', {}, title), el('div', { class: 'json' }, jsonView(v === undefined ? null : v)));
}

// answer shows an API answer (or a local error) in place.
function showAnswer(box, ok, text) {
  box.className = 'answer ' + (ok ? 'ok' : 'error');
  box.textContent = text;
}

// ---- the API ----

/** ApiError carries the API's status and message. */
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function key() { return sessionStorage.getItem(KEY_STORE) || ''; }

// api calls the management API; the key goes in the x-functions-key
// header, never in a URL.
async function api(method, path, { body, headers } = {}) {
  const h = Object.assign({}, headers || {});
  if (key()) h['x-functions-key'] = key();
  if (body !== undefined) h['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(API + path, { method, headers: h, body, cache: 'no-store', credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, 'the app cannot be reached: ' + e.message);
  }
  const text = await resp.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = text; } }
  if (resp.status === 401) { askKey(key() ? 'The key was refused; enter the right one.' : ''); throw new ApiError(401, 'a function key is needed'); }
  if (!resp.ok) {
    const msg = data && data.error && data.error.message ? data.error.message : (typeof data === 'string' ? data : resp.statusText);
    throw new ApiError(resp.status, `${resp.status}: ${msg}`);
  }
  return { status: resp.status, data, headers: resp.headers, text };
}

function describe(r) {
  return `${r.status} ${r.status === 202 ? 'Accepted' : 'OK'}` + (r.text ? '\n' + r.text : '');
}

// ---- key ----

let askingKey = false;
function askKey(note) {
  if (askingKey) return;
  askingKey = true;
  stopPoll();
  const input = el('input', { type: 'password', id: 'key', autocomplete: 'off', required: true });
  const form = el('form', { class: 'keyform', id: 'key-form' },
    el('h1', {}, 'Function key'),
    el('p', { class: 'muted' }, 'This app requires a function key. It is kept in this browser tab only (session storage) and sent in the x-functions-key header.'),
    note ? el('p', { class: 'answer error' }, note) : null,
    input,
    el('button', { class: 'primary', type: 'submit' }, 'Open dashboard'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY_STORE, input.value);
    askingKey = false;
    document.getElementById('forget-key').hidden = false;
    route();
  });
  main.replaceChildren(form);
  input.focus();
}

// ---- routing ----

function stopPoll() { if (timer) { clearTimeout(timer); timer = null; } }

function route() {
  stopPoll();
  view++;
  const h = location.hash.replace(/^#/, '') || '/';
  if (askingKey) return;
  checkEntities();
  let m;
  if ((m = h.match(/^\/instances\/([^?]+)$/))) {
    let id;
    try { id = decodeURIComponent(m[1]); } catch { id = m[1]; }
    instancePage(id, view);
  } else if (h === '/entities') {
    entitiesPage(view);
  } else {
    listPage(view);
  }
}

// checkEntities shows the Entities link once the app is seen to have entities.
let entitiesSeen = false;
function checkEntities() {
  if (entitiesSeen) return;
  api('GET', '/entities?top=1').then((r) => {
    if (r.data && r.data.length) { entitiesSeen = true; document.getElementById('nav-entities').hidden = false; }
  }).catch(() => {});
}

// ---- instance list ----

// list state survives navigation to an instance and back.
const listState = { status: '', name: '', prefix: '', from: '', to: '', top: 20, tokens: [''], page: 0, auto: true };

function isoOrEmpty(local) {
  if (!local) return '';
  const d = new Date(local);
  return isNaN(d) ? '' : d.toISOString();
}

function filterQuery(s, { status = true } = {}) {
  const q = new URLSearchParams();
  if (status && s.status) q.set('runtimeStatus', s.status);
  if (s.prefix) q.set('instanceIdPrefix', s.prefix);
  if (s.from) q.set('createdTimeFrom', isoOrEmpty(s.from));
  if (s.to) q.set('createdTimeTo', isoOrEmpty(s.to));
  return q;
}

// all pages through every instance matching q (at most cap of them).
async function all(q, cap) {
  q.set('showInput', 'false');
  q.set('top', '1000');
  const out = [];
  let token = '';
  do {
    const r = await api('GET', '/instances?' + q, { headers: token ? { 'x-ms-continuation-token': token } : {} });
    out.push(...r.data);
    token = r.headers.get('x-ms-continuation-token') || '';
  } while (token && out.length < cap);
  return { rows: out, more: !!token };
}

function listPage(v) {
  const s = listState;
  const status = el('select', { name: 'status', id: 'f-status' }, el('option', { value: '' }, 'any status'),
    STATUSES.map((x) => el('option', { value: x, selected: s.status === x }, x)));
  const name = el('input', { name: 'name', id: 'f-name', placeholder: 'orchestrator name', value: s.name });
  const prefix = el('input', { name: 'prefix', id: 'f-prefix', placeholder: 'instance ID prefix', value: s.prefix });
  const from = el('input', { type: 'datetime-local', step: 1, id: 'f-from', value: s.from });
  const to = el('input', { type: 'datetime-local', step: 1, id: 'f-to', value: s.to });
  const top = el('select', { id: 'f-top' }, [5, 20, 50, 100].map((n) => el('option', { value: n, selected: s.top === n }, n + ' per page')));
  const auto = el('input', { type: 'checkbox', id: 'f-auto', checked: s.auto });
  const form = el('form', { class: 'filters', id: 'filters' },
    el('label', {}, 'Status', status), el('label', {}, 'Name', name), el('label', {}, 'Instance ID prefix', prefix),
    el('label', {}, 'Created from', from), el('label', {}, 'Created to', to), el('label', {}, 'Page size', top),
    el('button', { class: 'primary', type: 'submit' }, 'Apply'),
    el('label', {}, el('span', {}, auto, ' auto-refresh')));
  const answer = el('div', { class: 'answer', id: 'list-answer' });
  const counts = el('div', { class: 'counts', id: 'counts' });
  const tbody = el('tbody', { id: 'instances' });
  const pageInfo = el('span', { class: 'muted' });
  const prev = el('button', { type: 'button', id: 'prev' }, '‹ Previous');
  const next = el('button', { type: 'button', id: 'next' }, 'Next ›');
  const purgeAnswer = el('div', { class: 'answer', id: 'purge-answer' });
  const purge = el('button', { type: 'button', class: 'danger', id: 'bulk-purge' }, 'Purge finished instances matching the filter…');
  main.replaceChildren(el('h1', {}, 'Orchestration instances'), form, counts, answer,
    el('table', {}, el('thead', {}, el('tr', {}, ['Instance ID', 'Name', 'Status', 'Created', 'Last updated'].map((x) => el('th', {}, x)))), tbody),
    el('div', { class: 'pager' }, prev, pageInfo, next), el('h2', {}, 'Bulk purge'),
    el('p', { class: 'muted' }, 'Deletes the history and status of every finished (Completed, Failed, Canceled, Terminated) instance that matches the status, prefix and time filters above.'),
    purge, purgeAnswer);

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    Object.assign(s, { status: status.value, name: name.value.trim(), prefix: prefix.value.trim(), from: from.value, to: to.value, top: Number(top.value), tokens: [''], page: 0 });
    load();
  });
  auto.addEventListener('change', () => { s.auto = auto.checked; schedule(); });
  prev.addEventListener('click', () => { if (s.page > 0) { s.page--; load(); } });
  next.addEventListener('click', () => { if (s.tokens[s.page + 1]) { s.page++; load(); } });
  purge.addEventListener('click', () => bulkPurge(purgeAnswer));

  function schedule() {
    stopPoll();
    if (s.auto && v === view) timer = setTimeout(load, POLL_MS * 2);
  }

  // Only the latest load may draw: an older answer arriving late (the
  // auto-refresh racing a new filter) is dropped.
  let seq = 0;
  async function load() {
    stopPoll();
    const my = ++seq;
    const q = filterQuery(s);
    q.set('top', String(s.top));
    q.set('showInput', 'false');
    try {
      const token = s.tokens[s.page];
      const r = await api('GET', '/instances?' + q, { headers: token ? { 'x-ms-continuation-token': token } : {} });
      if (v !== view || my !== seq) return;
      s.tokens[s.page + 1] = r.headers.get('x-ms-continuation-token') || '';
      s.tokens.length = s.page + 2;
      let rows = r.data;
      if (s.name) rows = rows.filter((x) => (x.name || '').toLowerCase().includes(s.name.toLowerCase()));
      tbody.replaceChildren(...rows.map((x) => el('tr', { 'data-id': x.instanceId },
        el('td', { class: 'id' }, el('a', { href: instanceHref(x.instanceId) }, x.instanceId)),
        el('td', {}, x.name), el('td', { class: 'st' }, statusBadge(x.runtimeStatus)),
        el('td', {}, fmtTime(x.createdTime)), el('td', {}, fmtTime(x.lastUpdatedTime)))));
      if (rows.length === 0) tbody.replaceChildren(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No instance matches.')));
      pageInfo.textContent = `page ${s.page + 1}` + (s.name ? ' (name filter applies to this page)' : '');
      prev.disabled = s.page === 0;
      next.disabled = !s.tokens[s.page + 1];
      answer.className = 'answer';
      answer.textContent = '';
      await loadCounts(my);
    } catch (e) {
      if (v !== view || my !== seq || e.status === 401) return;
      showAnswer(answer, false, e.message);
    }
    if (my === seq) schedule();
  }

  async function loadCounts(my) {
    const { rows, more } = await all(filterQuery(s, { status: false }), 5000);
    if (v !== view || my !== seq) return;
    const n = {};
    for (const x of rows) {
      if (s.name && !(x.name || '').toLowerCase().includes(s.name.toLowerCase())) continue;
      n[x.runtimeStatus] = (n[x.runtimeStatus] || 0) + 1;
    }
    counts.replaceChildren(el('span', { class: 'count' }, `all: ${Object.values(n).reduce((a, b) => a + b, 0)}${more ? '+' : ''}`),
      ...STATUSES.filter((x) => n[x]).map((x) => el('span', { class: 'count', 'data-status': x }, statusBadge(x), ` ${n[x]}`)));
  }

  async function bulkPurge(box) {
    const q = filterQuery(s);
    try {
      const { rows, more } = await all(filterQuery(s), 100000);
      const finished = rows.filter((x) => FINISHED.includes(x.runtimeStatus)).length;
      if (finished === 0) { showAnswer(box, false, 'No finished instance matches the filter: nothing to purge.'); return; }
      if (!confirm(`Purge ${finished}${more ? '+' : ''} finished instance(s) matching the filter? This cannot be undone.`)) return;
      if (!q.has('createdTimeFrom')) q.set('createdTimeFrom', '1970-01-01T00:00:00Z');
      const r = await api('DELETE', '/instances?' + q);
      showAnswer(box, true, describe(r));
      load();
    } catch (e) {
      if (e.status !== 401) showAnswer(box, false, e.message);
    }
  }

  load();
}

// ---- instance page ----

// timelineItems turns the history entries into bars.
function timelineItems(events, st) {
  const items = [];
  const t = (x) => (x ? Date.parse(x) : NaN);
  const attempts = {};
  const timers = [];
  // The calls scheduled (showScheduled=true) that no completion answered
  // yet, by EventId: the ones still running.
  const open = new Map();
  const callKey = (kind, fn, input) => kind + '\u0000' + fn + '\u0000' + JSON.stringify(input === undefined ? null : input);
  let prevTs = NaN;
  for (const ev of events) {
    const ts = t(ev.Timestamp);
    switch (ev.EventType) {
      case 'TaskScheduled':
      case 'SubOrchestrationInstanceCreated':
        if (ev.EventId !== undefined) open.set(ev.EventId, ev);
        break;
      case 'TaskCompleted':
      case 'TaskFailed':
      case 'SubOrchestrationInstanceCompleted':
      case 'SubOrchestrationInstanceFailed': {
        open.delete(ev.TaskScheduledId);
        const kind = ev.EventType.startsWith('Task') ? 'activity' : 'suborchestration';
        const fn = ev.FunctionName || '?';
        // The attempts of one call: the same function with the same input.
        const call = callKey(kind, fn, ev.Input);
        const n = (attempts[call] = (attempts[call] || 0) + 1);
        const input = ev.Input === undefined || ev.Input === null ? '' : JSON.stringify(ev.Input);
        items.push({ kind, label: fn, call, input, start: t(ev.ScheduledTime), end: ts, failed: ev.EventType.endsWith('Failed'), attempt: n, child: ev.InstanceId, reason: ev.Reason });
        break;
      }
      case 'TimerCreated':
        timers.push({ kind: 'timer', label: 'timer', start: ts, end: t(ev.FireAt), fireAt: ev.FireAt, pending: true, created: ev.Timestamp });
        items.push(timers[timers.length - 1]);
        break;
      case 'TimerFired': {
        const tm = timers.find((x) => x.pending && x.fireAt === ev.FireAt);
        // A timer fires no earlier than its FireAt (the event's own time
        // may be when the timer was scheduled).
        const end = Math.max(ts, t(ev.FireAt) || ts);
        if (tm) { tm.end = end; tm.pending = false; } else items.push({ kind: 'timer', label: 'timer', start: ts, end });
        break;
      }
      case 'EventRaised':
        // The wait itself leaves no event: it is drawn from the step
        // before the event to the event's arrival.
        items.push({ kind: 'event', label: 'event ' + (ev.Name || '?'), start: isNaN(prevTs) ? ts : prevTs, end: ts });
        break;
    }
    if (!isNaN(ts)) prevTs = ts;
  }
  // Calls without a completion: open bars to now while the instance runs;
  // once it ended, to its end, marked as never finished.
  const live = LIVE.includes(st.runtimeStatus);
  const last = events.find((e) => e.EventType === 'ExecutionCompleted' || e.EventType === 'ExecutionTerminated');
  const endedAt = last ? t(last.Timestamp) : t(st.lastUpdatedTime);
  for (const ev of open.values()) {
    const kind = ev.EventType === 'TaskScheduled' ? 'activity' : 'suborchestration';
    const fn = ev.Name || '?';
    const call = callKey(kind, fn, ev.Input);
    const input = ev.Input === undefined || ev.Input === null ? '' : JSON.stringify(ev.Input);
    items.push({ kind, label: fn, call, input, start: t(ev.Timestamp), end: live ? Date.now() : endedAt, attempt: (attempts[call] || 0) + 1,
      child: ev.InstanceId, running: live, unfinished: !live, since: ev.Timestamp });
  }
  for (const tm of timers) if (tm.pending && live) { tm.running = true; tm.since = tm.created; }
  // Retries: a call made again after a failure shows its attempt numbers.
  const retried = new Set(items.filter((x) => x.call && x.attempt > 1).map((x) => x.call));
  for (const it of items) if (retried.has(it.call)) it.retry = true;
  return items;
}

function timeline(events, st) {
  const items = timelineItems(events, st);
  const box = el('div', { class: 'timeline', id: 'timeline' });
  if (items.length === 0) { box.append(el('p', { class: 'muted' }, 'No activity, sub-orchestration, timer or event yet.')); return box; }
  const started = events.find((e) => e.EventType === 'ExecutionStarted');
  const ended = events.find((e) => e.EventType === 'ExecutionCompleted' || e.EventType === 'ExecutionTerminated');
  let t0 = started ? Date.parse(started.Timestamp) : Math.min(...items.map((x) => x.start).filter(isFinite));
  let t1 = ended ? Date.parse(ended.Timestamp) : (LIVE.includes(st.runtimeStatus) ? Date.now() : Date.parse(st.lastUpdatedTime));
  for (const it of items) {
    if (isFinite(it.start)) t0 = Math.min(t0, it.start);
    if (isFinite(it.end)) t1 = Math.max(t1, it.end);
  }
  const span = Math.max(t1 - t0, 1);
  const axis = el('div', { class: 'axis' });
  for (const f of [0, 0.25, 0.5, 0.75, 1]) axis.append(Object.assign(el('span', {}, fmtDuration(span * f)), {}));
  [...axis.children].forEach((c, i) => { c.style.left = (i * 25) + '%'; });
  box.append(axis);
  for (const it of items) {
    const start = isFinite(it.start) ? it.start : t0;
    const end = isFinite(it.end) ? it.end : start;
    const dur = end - start;
    let label = it.label + (it.retry ? ` (attempt ${it.attempt})` : '');
    const what = it.kind === 'timer' ? 'timer' : it.kind + ' ' + label;
    let title = `${what}: ${fmtDuration(dur)}${it.failed ? ' — failed' + (it.reason ? ': ' + it.reason : '') : ''}${it.pending ? ' (pending)' : ''}`;
    if (it.running) title = `${what}: running since ${fmtTime(it.since)}` + (it.kind === 'timer' ? `, fires at ${fmtTime(it.fireAt)}` : ` (${fmtDuration(dur)} so far)`);
    else if (it.unfinished) title = `${what}: started ${fmtTime(it.since)}, never finished`;
    const bar = el(it.child ? 'a' : 'span', {
      class: `bar ${it.kind}${it.failed ? ' failed' : ''}${it.pending || it.unfinished ? ' pending' : ''}${it.running ? ' running' : ''}`, title,
      href: it.child ? instanceHref(it.child) : null, 'data-kind': it.kind, 'data-label': it.label,
    });
    bar.style.left = ((start - t0) / span * 100) + '%';
    bar.style.width = (Math.max(dur, 0) / span * 100) + '%';
    box.append(el('div', { class: 'lane' + (it.failed ? ' failed' : '') },
      el('span', { class: 'label', title: label + (it.input ? ' ' + it.input : '') }, it.failed ? '✕ ' : '', it.retry ? '↻ ' : '', label,
        it.input ? el('span', { class: 'muted' }, ' ' + (it.input.length > 28 ? it.input.slice(0, 27) + '…' : it.input)) : ''),
      el('span', { class: 'track' }, bar)));
  }
  box.append(el('div', { class: 'legend' }, el('span', {}, el('i', {}), 'activity'), el('span', {}, el('i', { class: 'suborchestration' }), 'sub-orchestration'),
    el('span', {}, el('i', { class: 'timer' }), 'timer'), el('span', {}, el('i', { class: 'event' }), 'event'), el('span', {}, el('i', { class: 'failed' }), 'failed'),
    el('span', {}, el('i', { class: 'running' }), 'running'),
    el('span', {}, `total ${fmtDuration(span)}`)));
  return box;
}

function historyTable(events) {
  const known = new Set(['EventType', 'Timestamp', 'FunctionName', 'Name']);
  return el('table', { id: 'history' },
    el('thead', {}, el('tr', {}, ['#', 'Event', 'Timestamp', 'Name', 'Details'].map((x) => el('th', {}, x)))),
    el('tbody', {}, events.map((ev, i) => {
      const rest = Object.fromEntries(Object.entries(ev).filter(([k]) => !known.has(k)));
      return el('tr', { class: /Failed|Terminated/.test(ev.EventType) ? 'failed' : '' }, el('td', {}, i + 1), el('td', {}, ev.EventType), el('td', { class: 'time' }, fmtTime(ev.Timestamp)),
        el('td', {}, ev.FunctionName || ev.Name || ''), el('td', { class: 'json' }, Object.keys(rest).length ? jsonView(rest, 1) : ''));
    })));
}

function instancePage(id, v) {
  const path = '/instances/' + encodeURIComponent(id);
  const head = el('div', { id: 'instance-head' });
  const body = el('div', { id: 'instance-body' });
  const answer = el('div', { class: 'answer', id: 'action-answer' });
  const loadAnswer = el('div', { class: 'answer', id: 'load-answer' });

  const evName = el('input', { id: 'event-name', placeholder: 'event name' });
  const evData = el('textarea', { id: 'event-data', rows: 1, cols: 24, placeholder: 'JSON data, e.g. "hello"' });
  const reason = el('input', { id: 'reason', placeholder: 'reason (optional)' });
  const newID = el('input', { type: 'checkbox', id: 'restart-new-id', checked: true });
  const btn = (label, idName, fn, cls) => el('button', { type: 'button', id: idName, class: cls, onclick: fn }, label);

  async function act(what, method, p, opts, after) {
    if (!confirm(`${what} instance ${id}?`)) return;
    try {
      const r = await api(method, p, opts);
      if (v !== view) return;
      showAnswer(answer, true, `${what}: ${describe(r)}`);
      if (after) after(r); else refresh();
    } catch (e) {
      if (e.status !== 401 && v === view) showAnswer(answer, false, `${what}: ${e.message}`);
    }
  }
  const rq = () => (reason.value.trim() ? '?reason=' + encodeURIComponent(reason.value.trim()) : '');
  const actions = el('div', { class: 'actions box', id: 'actions' },
    el('label', {}, 'Event name', evName), el('label', {}, 'Event data (JSON)', evData),
    btn('Raise event', 'raise', () => {
      const name = evName.value.trim();
      const data = evData.value.trim();
      if (!name) { showAnswer(answer, false, 'Raise event: give the event a name.'); return; }
      if (data) { try { JSON.parse(data); } catch (e) { showAnswer(answer, false, `Raise event: the data is not JSON (${e.message}).`); return; } }
      act(`Raise event ${JSON.stringify(name)} to`, 'POST', path + '/raiseEvent/' + encodeURIComponent(name), { body: data || 'null' });
    }, 'primary'),
    el('label', {}, 'Reason', reason),
    btn('Suspend', 'suspend', () => act('Suspend', 'POST', path + '/suspend' + rq())),
    btn('Resume', 'resume', () => act('Resume', 'POST', path + '/resume' + rq())),
    btn('Rewind', 'rewind', () => act('Rewind', 'POST', path + '/rewind' + rq())),
    btn('Terminate', 'terminate', () => act('Terminate', 'POST', path + '/terminate' + rq()), 'danger'),
    el('label', {}, el('span', {}, newID, ' new ID'), btn('Restart', 'restart', () => act('Restart', 'POST', path + '/restart?restartWithNewInstanceId=' + newID.checked, {}, (r) => {
      const nid = r.data && r.data.id;
      if (nid && nid !== id) answer.append(el('div', {}, 'New instance: ', el('a', { href: instanceHref(nid), id: 'restarted-link' }, nid)));
      refresh();
    }))),
    btn('Purge', 'purge', () => act('Purge', 'DELETE', path, {}, () => { body.replaceChildren(el('p', { class: 'muted' }, 'The instance was purged.')); head.replaceChildren(el('h1', {}, id)); }), 'danger'));

  main.replaceChildren(el('p', {}, el('a', { href: '#/' }, '‹ All instances')), head, loadAnswer, actions, answer, body);

  let lastSig = '';
  async function refresh() {
    stopPoll();
    let st;
    try {
      st = (await api('GET', path + '?showHistory=true&showHistoryOutput=true&showInput=true&showScheduled=true')).data;
    } catch (e) {
      if (v !== view || e.status === 401) return;
      showAnswer(loadAnswer, false, e.message);
      if (e.status !== 404) timer = setTimeout(refresh, POLL_MS * 2);
      return;
    }
    if (v !== view) return;
    loadAnswer.className = 'answer'; loadAnswer.textContent = '';
    const events = st.historyEvents || [];
    const sig = JSON.stringify(st);
    if (sig !== lastSig) {
      lastSig = sig;
      // Keep which JSON nodes the user opened or closed? The panels are
      // rebuilt only when something changed, so a finished instance stays put.
      head.replaceChildren(el('h1', {}, el('span', { id: 'instance-id' }, st.instanceId), ' ', el('span', { id: 'instance-status' }, statusBadge(st.runtimeStatus))),
        el('dl', { class: 'props' }, el('dt', {}, 'Name'), el('dd', { id: 'instance-name' }, st.name), el('dt', {}, 'Created'), el('dd', {}, fmtTime(st.createdTime)),
          el('dt', {}, 'Last updated'), el('dd', {}, fmtTime(st.lastUpdatedTime))));
      body.replaceChildren(
        el('div', { class: 'panels' },
          Object.assign(jsonPanel('Input', st.input), { id: 'panel-input' }),
          Object.assign(jsonPanel('Output', st.output), { id: 'panel-output' }),
          Object.assign(jsonPanel('Custom status', st.customStatus), { id: 'panel-custom' })),
        el('h2', {}, 'Timeline'), timeline(events, st),
        el('h2', {}, `History (${events.length} events)`), historyTable(events));
    } else if (LIVE.includes(st.runtimeStatus)) {
      // Nothing new, but bars of running steps reach to now: redraw them.
      const old = document.getElementById('timeline');
      if (old && old.querySelector('.bar.running')) old.replaceWith(timeline(events, st));
    }
    if (LIVE.includes(st.runtimeStatus)) timer = setTimeout(refresh, POLL_MS);
  }
  refresh();
}

// ---- entities ----

function entitiesPage(v) {
  const answer = el('div', { class: 'answer', id: 'entities-answer' });
  const tbody = el('tbody', { id: 'entities' });
  const name = el('input', { id: 'sig-name', placeholder: 'entity name' });
  const k = el('input', { id: 'sig-key', placeholder: 'key' });
  const op = el('input', { id: 'sig-op', placeholder: 'operation' });
  const input = el('textarea', { id: 'sig-input', rows: 1, cols: 20, placeholder: 'JSON input (optional)' });
  const sigAnswer = el('div', { class: 'answer', id: 'signal-answer' });
  const form = el('form', { class: 'actions', id: 'signal-form' }, el('label', {}, 'Entity', name), el('label', {}, 'Key', k), el('label', {}, 'Operation', op),
    el('label', {}, 'Input (JSON)', input), el('button', { class: 'primary', type: 'submit' }, 'Signal'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = input.value.trim();
    if (!name.value.trim() || !k.value.trim() || !op.value.trim()) { showAnswer(sigAnswer, false, 'Signal: give the entity name, key and operation.'); return; }
    if (data) { try { JSON.parse(data); } catch (err) { showAnswer(sigAnswer, false, `Signal: the input is not JSON (${err.message}).`); return; } }
    if (!confirm(`Signal ${name.value.trim()}/${k.value.trim()} with ${op.value.trim()}?`)) return;
    try {
      const r = await api('POST', `/entities/${encodeURIComponent(name.value.trim())}/${encodeURIComponent(k.value.trim())}?op=${encodeURIComponent(op.value.trim())}`, { body: data || undefined });
      showAnswer(sigAnswer, true, 'Signal: ' + describe(r));
      setTimeout(() => v === view && load(), POLL_MS / 2);
    } catch (err) {
      if (err.status !== 401) showAnswer(sigAnswer, false, 'Signal: ' + err.message);
    }
  });
  main.replaceChildren(el('h1', {}, 'Entities'), answer,
    el('table', {}, el('thead', {}, el('tr', {}, ['Name', 'Key', 'Last operation', 'State'].map((x) => el('th', {}, x)))), tbody),
    el('h2', {}, 'Signal an entity'), form, sigAnswer);
  async function load() {
    try {
      const r = await api('GET', '/entities?fetchState=true&top=200');
      if (v !== view) return;
      const rows = r.data || [];
      tbody.replaceChildren(...rows.map((x) => el('tr', {}, el('td', {}, x.entityId.name), el('td', { class: 'id' }, x.entityId.key),
        el('td', {}, fmtTime(x.lastOperationTime)), el('td', { class: 'json state' }, jsonView(x.state === undefined ? null : x.state, 1)))));
      if (rows.length === 0) tbody.replaceChildren(el('tr', {}, el('td', { colspan: 4, class: 'muted' }, 'No entity has state yet.')));
      answer.className = 'answer'; answer.textContent = '';
    } catch (e) {
      if (v === view && e.status !== 401) showAnswer(answer, false, e.message);
    }
    stopPoll();
    if (v === view) timer = setTimeout(load, POLL_MS * 2);
  }
  load();
}

// ---- start ----

document.getElementById('forget-key').addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORE);
  document.getElementById('forget-key').hidden = true;
  askKey('');
});
document.getElementById('forget-key').hidden = !key();
window.addEventListener('hashchange', route);
route();
