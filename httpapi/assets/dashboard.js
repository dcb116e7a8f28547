// The dashboard of coordinated: one page with hash routes over the JSON API
// (docs/http-api.md), polling while it is shown.
//
//   #/                          work specs with counts, throughput, pause state
//   #/spec/NAME?status=&prefix=&start=   units of one spec, paged by key
//   #/unit/SPEC/REF             one unit in full
//   #/workers?start=            live workers and what they hold
//
// Everything from the queue is user-controlled, so it enters the page only
// as text nodes and attribute values through the DOM API (h() below), and
// links are built from encodeURIComponent'd parts behind a fixed "#/".
'use strict';

const API = '/api/v1';
const READ_ONLY = document.body.dataset.readOnly === 'true';
const STATUSES = ['available', 'pending', 'delayed', 'failed', 'finished'];
const POLL_MS = 3000;
const PAGE = 100;
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- DOM

/** An element with attributes (on* keys add listeners) and children. */
function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** Replaces an element's children, as h() takes them. */
function fill(e, ...children) {
  e.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}

/** A link inside the dashboard: `parts` are encoded, `query` too. */
function link(parts, query, ...children) {
  return h('a', { href: route(parts, query) }, ...children);
}

function route(parts, query) {
  let href = '#/' + parts.map(encodeURIComponent).join('/');
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  const qs = q.toString();
  return qs ? href + '?' + qs : href;
}

const fmtInt = (n) => Number(n).toLocaleString('en-US');

/** "12:04:05 (in 3 min)" for seconds since the epoch; "—" for null. */
function fmtTime(secs) {
  if (secs === null || secs === undefined) return '—';
  const d = new Date(secs * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const today = new Date().toDateString() === d.toDateString();
  return `${today ? clock : day + ' ' + clock} (${ago(secs)})`;
}

function ago(secs) {
  const dt = secs - Date.now() / 1000;
  const a = Math.abs(dt);
  const span = a < 60 ? `${Math.round(a)} s` : a < 3600 ? `${Math.round(a / 60)} min`
    : a < 172800 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return dt >= 0 ? `in ${span}` : `${span} ago`;
}

// ---------------------------------------------------------------- values

/** A number as its JSON text, so 1.0 stays a float and big integers exact. */
class Num { constructor(src) { this.src = src; } }

/** A number read with parseExact, as a JS number. */
const plain = (x) => (x instanceof Num ? Number(x.src) : x);
/** Its text as the daemon wrote it. */
const exactText = (x) => (x instanceof Num ? x.src : String(x));

/** JSON text of a parseExact value, numbers as the daemon wrote them. */
function exactJson(v) {
  const mark = 'num-' + Math.random().toString(36).slice(2);
  const text = JSON.stringify(v, (k, x) => (x instanceof Num ? mark + x.src : x), 2);
  return text.replace(new RegExp('"' + mark + '([^"]*)"', 'g'), '$1');
}

/** JSON.parse keeping each number's source text where the browser gives it. */
function parseExact(text) {
  return JSON.parse(text, function (key, value, ctx) {
    return typeof value === 'number' && ctx && typeof ctx.source === 'string' ? new Num(ctx.source) : value;
  });
}

function bytesOf(b64) {
  const s = atob(b64.replace(/-/g, '+').replace(/_/g, '/'));
  return Array.from(s, (c) => c.charCodeAt(0));
}

/** Python's notation for bytes: b'ab\x00'. */
function bytesLiteral(b64) {
  let out = "b'";
  for (const c of bytesOf(b64)) {
    if (c === 0x27 || c === 0x5c) out += '\\' + String.fromCharCode(c);
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c >= 0x20 && c < 0x7f) out += String.fromCharCode(c);
    else out += '\\x' + c.toString(16).padStart(2, '0');
  }
  return out + "'";
}

/** The one `$` key of an escape object, or null for plain data. */
function escapeKey(v) {
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0].startsWith('$') ? keys[0] : null;
}

/**
 * A value in the API's JSON encoding as tokens [text, class] in Python's
 * notation: tuples (a, b), b'bytes', UUID('…'), {key: value}. `ind` is the
 * indentation for a multi-line layout, or null for one line.
 */
function tokens(v, ind) {
  if (v instanceof Num) return [[v.src, 'v-num']];
  if (v === null) return [['None', 'v-const']];
  if (v === true) return [['True', 'v-const']];
  if (v === false) return [['False', 'v-const']];
  if (typeof v === 'number') return [[String(v), 'v-num']];
  if (typeof v === 'string') return [[JSON.stringify(v), 'v-str']];
  if (Array.isArray(v)) return seq('[', ']', v.map((x) => (i) => tokens(x, i)), ind);
  const esc = escapeKey(v);
  const inner = esc === null ? null : v[esc];
  switch (esc) {
    case null:
      return seq('{', '}', Object.entries(v).map(([k, x]) => (i) => [[JSON.stringify(k), 'v-str'], [': ', ''], ...tokens(x, i)]), ind);
    case '$bytes': return [[bytesLiteral(inner), 'v-bytes']];
    case '$uuid': return [["UUID('" + inner + "')", 'v-uuid']];
    case '$int': return [[String(inner), 'v-num']];
    case '$float': return [[inner === 'NaN' ? "float('nan')" : inner === 'Infinity' ? "float('inf')" : "float('-inf')", 'v-num']];
    case '$tuple': {
      const items = inner.map((x) => (i) => tokens(x, i));
      if (items.length === 1) return [['(', ''], ...items[0](ind), [',)', '']];
      return seq('(', ')', items, ind);
    }
    case '$map':
      return seq('{', '}', inner.map(([k, x]) => (i) => [...tokens(k, i), [': ', ''], ...tokens(x, i)]), ind);
    case '$tag': return [[`tag ${inner[0] instanceof Num ? inner[0].src : inner[0]}(`, 'v-tag'], ...tokens(inner[1], ind), [')', 'v-tag']];
    default: return [[JSON.stringify(v), '']];
  }
}

const width = (ts) => ts.reduce((n, [t]) => n + t.length, 0);

/** A bracketed sequence, on one line if it fits in 80 columns. */
function seq(open, close, items, ind) {
  const flat = [[open, '']];
  items.forEach((item, n) => { if (n) flat.push([', ', '']); flat.push(...item(null)); });
  flat.push([close, '']);
  if (ind === null || items.length === 0 || ind.length + width(flat) <= 80) return flat;
  const deeper = ind + '  ';
  const out = [[open + '\n', '']];
  for (const item of items) out.push([deeper, ''], ...item(deeper), [',\n', '']);
  out.push([ind + close, '']);
  return out;
}

/** A <pre> showing a value. */
function valueView(v, cls) {
  return h('pre', { class: 'value ' + (cls || '') }, tokens(v, '').map(([t, c]) => (c ? h('span', { class: c }, t) : t)));
}

/** A value on one line (for keys and table cells). */
function valueInline(v) {
  return h('code', { class: 'value' }, tokens(v, null).map(([t, c]) => (c ? h('span', { class: c }, t) : t)));
}

/** A unit key for a link text: the text itself, or b'…' for bytes. */
const keyText = (key) => (typeof key === 'string' ? key : width(tokens(key, null)) < 200 ? tokens(key, null).map(([t]) => t).join('') : '(long key)');

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** Calls the API; JSON in, JSON out (numbers exact when `exact`). */
async function api(method, path, body, exact) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(API + path, init);
  } catch (e) {
    throw new ApiError(0, 'the daemon does not answer (' + e.message + ')');
  }
  const text = await resp.text();
  let json = null;
  try { json = exact ? parseExact(text) : JSON.parse(text); } catch (_) { /* not JSON */ }
  if (resp.status === 401) {
    needToken(json && json.error);
    throw new ApiError(401, 'this server needs its access token');
  }
  if (!resp.ok) throw new ApiError(resp.status, (json && json.error) || `${resp.status} ${resp.statusText}`);
  return json;
}

const specPath = (name) => '/work_specs/' + encodeURIComponent(name);
const unitPath = (spec, ref) => specPath(spec) + '/work_units/' + encodeURIComponent(ref);

/** Every spec, following `next` (a queue has tens of specs, not millions). */
async function allSpecs() {
  const specs = [];
  let start = '';
  for (let n = 0; n < 100; n++) {
    const page = await api('GET', '/work_specs?limit=1000' + (start ? '&start=' + encodeURIComponent(start) : ''));
    specs.push(...page.work_specs);
    if (page.next === null) break;
    start = page.next;
  }
  return specs;
}

// ---------------------------------------------------------------- token

const TOKEN_COOKIE = 'coordinate_token';
let tokenWanted = null;

/** The server wants a token: show the form instead of the page. */
function needToken(message) {
  tokenWanted = message || 'this server needs its access token';
  render();
}

function tokenView(main) {
  const had = document.cookie.split(';').some((c) => c.trim().startsWith(TOKEN_COOKIE + '='));
  const input = h('input', { type: 'password', id: 'token', autocomplete: 'current-password', required: true, size: 40 });
  const form = h('form', { class: 'card token', id: 'token-form' },
    h('h1', {}, 'Access token'),
    h('p', {}, had ? 'That token was refused. ' : '', 'This daemon was started with --http-token-file: give the token that file holds. It is kept for this browser session only.'),
    h('label', {}, 'Token ', input), ' ',
    h('button', { type: 'submit', class: 'primary', id: 'token-submit' }, 'Open the dashboard'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const secure = location.protocol === 'https:' ? '; Secure' : '';
    document.cookie = `${TOKEN_COOKIE}=${encodeURIComponent(input.value.trim())}; path=/; SameSite=Strict${secure}`;
    tokenWanted = null;
    $('sign-out').hidden = false;
    render();
  });
  fill(main, form);
  input.focus();
}

// ---------------------------------------------------------------- feedback

function flash(message, isError) {
  const f = $('flash');
  fill(f, h('div', { class: isError ? 'error' : 'ok' }, message, ' ',
    h('button', { type: 'button', class: 'link', onclick: () => fill(f) }, 'dismiss')));
  if (!isError) setTimeout(() => { if (f.textContent.startsWith(message)) fill(f); }, 6000);
}

/**
 * Asks before an action: resolves to true (or the number typed, when
 * `input` names a field) if confirmed, else null.
 */
function confirmAction({ title, text, ok, danger, input }) {
  const d = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok || 'Confirm';
  $('confirm-ok').className = danger ? 'danger' : 'primary';
  $('confirm-field').hidden = !input;
  $('confirm-label').textContent = input || '';
  $('confirm-input').value = '';
  return new Promise((resolve) => {
    const done = (value) => {
      $('confirm-ok').onclick = $('confirm-cancel').onclick = d.onclose = d.querySelector('form').onsubmit = null;
      if (d.open) d.close();
      resolve(value);
    };
    const accept = () => {
      if (!input) return done(true);
      const v = $('confirm-input').valueAsNumber;
      if (Number.isFinite(v)) done(v); else $('confirm-input').focus();
    };
    $('confirm-ok').onclick = accept;
    d.querySelector('form').onsubmit = (ev) => { ev.preventDefault(); accept(); };
    $('confirm-cancel').onclick = () => done(null);
    d.onclose = () => done(null);
    d.showModal();
    (input ? $('confirm-input') : $('confirm-cancel')).focus();
  });
}

/** Runs a confirmed action, reports it, and refreshes the view. */
async function act(question, call, report) {
  const answer = await confirmAction(question);
  if (answer === null) return;
  try {
    const result = await call(answer);
    flash(report(result, answer));
  } catch (e) {
    flash(e.message, true);
  }
  refreshNow();
}

function button(label, attrs, onclick) {
  return READ_ONLY ? null : h('button', { type: 'button', ...attrs, class: 'action ' + (attrs.class || ''), onclick }, label);
}

function pauseButton(spec) {
  const verb = spec.paused ? 'Resume' : 'Pause';
  return button(verb, { class: spec.paused ? 'primary' : '', 'data-action': verb.toLowerCase() }, () => act(
    { title: `${verb} ${spec.name}?`, ok: verb,
      text: spec.paused ? 'Workers will be handed its units again.' : 'Workers will be handed no more of its units; those already out run on.' },
    () => api('POST', specPath(spec.name) + '/' + verb.toLowerCase(), {}),
    (s) => `${s.name} is ${s.paused ? 'paused' : 'running'}.`));
}

// ---------------------------------------------------------------- throughput

/** Finished and failed counts per spec over time, from successive polls. */
const samples = new Map();
const WINDOW_S = 60;

function record(specs) {
  const now = Date.now() / 1000;
  for (const s of specs) {
    const list = samples.get(s.name) || [];
    list.push({ t: now, finished: s.counts.finished, failed: s.counts.failed });
    while (list.length > 2 && list[1].t <= now - WINDOW_S) list.shift();
    samples.set(s.name, list);
  }
}

/** Units finished and failed per minute over the last minute, or null before two polls. */
function rate(name) {
  const list = samples.get(name);
  if (!list || list.length < 2) return null;
  const a = list[0], b = list[list.length - 1];
  const dt = b.t - a.t;
  if (dt < 1) return null;
  const per = (x, y) => Math.max(0, y - x) * 60 / dt;
  return { finished: per(a.finished, b.finished), failed: per(a.failed, b.failed) };
}

const totalHistory = [];

function fmtRate(r) {
  if (r === null) return '…';
  if (r === 0) return '0';
  return r >= 100 ? fmtInt(Math.round(r)) : r.toFixed(r >= 10 ? 0 : 1);
}

/** A small SVG line of the total finished/min over the last polls. */
function sparkline(values) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 120 28');
  svg.setAttribute('class', 'spark');
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i * 120) / Math.max(1, values.length - 1)},${27 - (v / max) * 25}`).join(' ');
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', pts || '0,27 120,27');
  svg.append(line);
  return svg;
}

// ---------------------------------------------------------------- views

/** The overview: every spec with its counts. */
function overview(main) {
  const summary = h('section', { class: 'cards' });
  const table = h('table', { class: 'specs', id: 'specs' });
  fill(main, h('h1', {}, 'Work specs'), summary, table);
  return async () => {
    const specs = await allSpecs();
    record(specs);
    const totals = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    let fin = 0, failRate = 0, known = false;
    for (const s of specs) {
      for (const st of STATUSES) totals[st] += s.counts[st];
      const r = rate(s.name);
      if (r) { fin += r.finished; failRate += r.failed; known = true; }
    }
    if (known) { totalHistory.push(fin); if (totalHistory.length > 60) totalHistory.shift(); }
    fill(summary,
      h('div', { class: 'card' }, h('div', { class: 'big' }, fmtInt(specs.length)), 'work specs',
        specs.some((s) => s.paused) ? h('div', { class: 'muted' }, `${specs.filter((s) => s.paused).length} paused`) : null),
      ...STATUSES.map((st) => h('div', { class: 'card st-' + st }, h('div', { class: 'big' }, fmtInt(totals[st])), st)),
      h('div', { class: 'card' }, h('div', { class: 'big', id: 'throughput' }, known ? fmtRate(fin) : '…'), 'finished / min',
        known && failRate > 0 ? h('div', { class: 'st-failed' }, `${fmtRate(failRate)} failed / min`) : null,
        totalHistory.length > 1 ? sparkline(totalHistory) : null));
    const head = h('tr', {}, h('th', {}, 'Spec'), h('th', {}, 'State'), h('th', { class: 'num' }, 'Priority'),
      h('th', { class: 'num' }, 'Weight'), STATUSES.map((st) => h('th', { class: 'num' }, st)),
      h('th', { class: 'num' }, 'Total'), h('th', { class: 'num', title: 'over the last minute' }, 'Finished/min'),
      READ_ONLY ? null : h('th', {}, ''));
    const rows = specs.map((s) => {
      const total = STATUSES.reduce((n, st) => n + s.counts[st], 0);
      const r = rate(s.name);
      return h('tr', { 'data-spec': s.name },
        h('td', {}, link(['spec', s.name], {}, s.name)),
        h('td', {}, s.paused ? h('span', { class: 'badge paused' }, 'paused') : h('span', { class: 'badge running' }, 'running')),
        h('td', { class: 'num' }, s.priority), h('td', { class: 'num' }, s.weight),
        STATUSES.map((st) => h('td', { class: 'num st-' + st, 'data-status': st, 'data-count': s.counts[st] },
          s.counts[st] ? link(['spec', s.name], { status: st }, fmtInt(s.counts[st])) : '0')),
        h('td', { class: 'num' }, fmtInt(total)),
        h('td', { class: 'num' }, fmtRate(r && r.finished)),
        READ_ONLY ? null : h('td', {}, pauseButton(s)));
    });
    fill(table, h('thead', {}, head), h('tbody', {}, rows.length ? rows
      : h('tr', {}, h('td', { colspan: 13, class: 'muted' }, 'No work specs yet.'))));
  };
}

/** Where the spec page's "Previous" goes: the starts of the pages before. */
let pageTrail = { at: '', starts: [] };

/** One spec: its counts by status and its units, a page at a time. */
function specView(main, name, q) {
  const status = q.get('status') || '';
  const prefix = q.get('prefix') || '';
  const start = q.get('start') || '';
  const here = JSON.stringify([name, status, prefix]);
  if (pageTrail.at !== here) pageTrail = { at: here, starts: [] };
  const selected = new Set();
  let page = { work_units: [] };

  const title = h('h1', {}, h('a', { href: '#/', class: 'muted' }, 'Work specs'), ' / ', name);
  const info = h('div', { class: 'spec-info' });
  const tabs = h('nav', { class: 'tabs', id: 'tabs' });
  const search = h('input', { type: 'search', id: 'prefix', value: prefix, placeholder: 'key prefix (text, or b64:… for bytes)', size: 36 });
  const searchForm = h('form', { class: 'search', onsubmit: (ev) => { ev.preventDefault(); location.hash = route(['spec', name], { status, prefix: search.value }); } },
    search, ' ', h('button', { type: 'submit' }, 'Search'),
    prefix ? [' ', link(['spec', name], { status }, 'clear')] : null);
  const actions = h('div', { class: 'actions' });
  const table = h('table', { class: 'units', id: 'units' });
  const pager = h('div', { class: 'pager' });
  const details = h('details', { class: 'spec-doc' });
  fill(main, title, info, tabs, h('div', { class: 'toolbar' }, searchForm, actions), table, pager, details);

  const keysOf = () => [...selected];
  /** An action on the selected units, which are let go once it is done. */
  const onSelected = (call) => async (arg) => { const r = await call(arg); selected.clear(); return r; };
  const some = () => (selected.size === 1 ? `the selected unit` : `the ${selected.size} selected units`);
  const toolbar = (spec) => {
    if (READ_ONLY) return fill(actions, h('span', { class: 'muted' }, 'read-only'));
    const none = selected.size === 0;
    fill(actions,
      button('Retry selected', { disabled: none, id: 'retry-selected' }, () => act(
        { title: 'Retry units?', text: `Make ${some()} available again if failed (others are left alone).`, ok: 'Retry' },
        onSelected(() => api('POST', specPath(name) + '/retry', { keys: keysOf() })), (r) => `${fmtInt(r.retried)} retried.`)),
      button('Set priority…', { disabled: none, id: 'prioritize-selected' }, () => act(
        { title: 'Set priority', text: `New priority for ${some()} (higher runs first).`, ok: 'Set priority', input: 'Priority' },
        onSelected((p) => api('POST', specPath(name) + '/prioritize', { keys: keysOf(), priority: p })), (r, p) => `${fmtInt(r.keys)} set to priority ${p}.`)),
      button('Delete selected', { disabled: none, class: 'danger', id: 'delete-selected' }, () => act(
        { title: 'Delete units?', text: `Delete ${some()} for good.`, ok: 'Delete', danger: true },
        onSelected(() => api('DELETE', specPath(name) + '/work_units', { keys: keysOf() })), (r) => `${fmtInt(r.deleted)} deleted.`)),
      spec.counts.failed ? button(`Retry all ${fmtInt(spec.counts.failed)} failed`, { id: 'retry-all' }, () => act(
        { title: 'Retry all failed units?', text: `Make every failed unit of ${name} available again.`, ok: 'Retry all' },
        () => api('POST', specPath(name) + '/retry', { all: true }), (r) => `${fmtInt(r.retried)} retried.`)) : null,
      status && !status.includes(',') && spec.counts[status] ? button(`Delete all ${fmtInt(spec.counts[status])} ${status}`, { class: 'danger', id: 'delete-status' }, () => act(
        { title: `Delete every ${status} unit?`, text: `Delete all ${status} units of ${name} for good.`, ok: 'Delete', danger: true },
        () => api('DELETE', specPath(name) + '/work_units', { status }), (r) => `${fmtInt(r.deleted)} deleted.`)) : null);
  };

  let lastSpec = null;
  const drawUnits = () => {
    const all = h('input', { type: 'checkbox', id: 'select-all', title: 'select this page',
      checked: page.work_units.length > 0 && page.work_units.every((u) => selected.has(u.ref)),
      onchange: (ev) => { for (const u of page.work_units) ev.target.checked ? selected.add(u.ref) : selected.delete(u.ref); drawUnits(); } });
    const rows = page.work_units.map((u) => h('tr', { 'data-ref': u.ref, class: selected.has(u.ref) ? 'selected' : '' },
      READ_ONLY ? null : h('td', {}, h('input', { type: 'checkbox', class: 'select', checked: selected.has(u.ref), 'aria-label': 'select',
        onchange: (ev) => { ev.target.checked ? selected.add(u.ref) : selected.delete(u.ref); drawUnits(); } })),
      h('td', { class: 'key' }, link(['unit', name, u.ref], {}, keyText(u.key))),
      h('td', {}, h('span', { class: 'badge st-' + u.status }, u.status)),
      h('td', {}, u.worker || '—'),
      h('td', {}, u.status === 'pending' ? fmtTime(u.lease_expires) : '—'),
      h('td', { class: 'num' }, u.attempts),
      h('td', { class: 'num' }, u.priority)));
    fill(table,
      h('thead', {}, h('tr', {}, READ_ONLY ? null : h('th', {}, all), h('th', {}, 'Key'), h('th', {}, 'Status'), h('th', {}, 'Worker'),
        h('th', {}, 'Lease expires'), h('th', { class: 'num' }, 'Attempts'), h('th', { class: 'num' }, 'Priority'))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 7, class: 'muted' }, prefix ? 'No unit with that prefix here.' : 'No units here.'))));
    if (lastSpec) toolbar(lastSpec);
  };

  return async () => {
    const query = new URLSearchParams({ limit: PAGE });
    if (status) query.set('status', status);
    if (prefix) query.set('prefix', prefix);
    if (start) query.set('start', start);
    const spec = await api('GET', specPath(name), undefined, true);
    const units = await api('GET', specPath(name) + '/work_units?' + query);
    const summary = { ...spec, counts: Object.fromEntries(STATUSES.map((st) => [st, plain(spec.counts[st])])) };
    record([summary]);
    lastSpec = summary;
    page = units;
    const r = rate(name);
    fill(info,
      summary.paused ? h('span', { class: 'badge paused', id: 'state' }, 'paused') : h('span', { class: 'badge running', id: 'state' }, 'running'),
      ` priority ${exactText(spec.priority)} · weight ${exactText(spec.weight)}`,
      r ? ` · ${fmtRate(r.finished)} finished/min` : '', ' ', pauseButton(summary));
    const total = STATUSES.reduce((n, st) => n + summary.counts[st], 0);
    fill(tabs,
      link(['spec', name], { prefix }, 'all ', h('span', { class: 'count' }, fmtInt(total))),
      STATUSES.map((st) => link(['spec', name], { status: st, prefix }, st, ' ', h('span', { class: 'count', 'data-status': st }, fmtInt(summary.counts[st])))));
    for (const a of tabs.children) a.classList.toggle('current', a.getAttribute('href') === route(['spec', name], { status, prefix }));
    drawUnits();
    const n = page.work_units.length;
    fill(pager,
      start ? h('button', { type: 'button', id: 'prev', onclick: () => { location.hash = route(['spec', name], { status, prefix, start: pageTrail.starts.pop() || '' }); } },
        pageTrail.starts.length ? '← Previous' : '← First page') : null,
      h('span', { class: 'muted' }, n ? `${fmtInt(n)} unit${n === 1 ? '' : 's'} on this page, by key` : ''),
      page.next !== null ? h('button', { type: 'button', id: 'next', onclick: () => { pageTrail.starts.push(start); location.hash = route(['spec', name], { status, prefix, start: page.next }); } }, 'Next →') : null);
    if (!details.open) {
      fill(details, h('summary', {}, 'Spec document and settings'),
        h('h3', {}, 'Document'), valueView(spec.data), h('h3', {}, 'Settings'), valueView(spec.meta));
    }
  };
}

/** One unit in full. */
function unitView(main, spec, ref) {
  const body = h('div', { class: 'unit' });
  fill(main, h('h1', {}, h('a', { href: '#/', class: 'muted' }, 'Work specs'), ' / ', link(['spec', spec], {}, spec), ' / ', h('span', { id: 'unit-key' }, ref)), body);
  const raw = h('details', { class: 'raw' });
  return async () => {
    const u = await api('GET', unitPath(spec, ref), undefined, true);
    $('unit-key').textContent = keyText(u.key);
    const rows = [
      ['Key', valueInline(u.key)],
      ['Ref', h('code', {}, u.ref)],
      ['Status', h('span', { class: 'badge st-' + u.status, id: 'unit-status' }, u.status)],
      ['Worker', u.worker || '—'],
      ['Lease expires', u.status === 'pending' && u.lease_expires !== null ? fmtTime(plain(u.lease_expires)) : '—'],
      ['Attempts', exactText(u.attempts)],
      ['Priority', exactText(u.priority)],
    ];
    const actions = READ_ONLY ? [] : [
      u.status === 'failed' ? button('Retry', { class: 'primary', id: 'retry-unit' }, () => act(
        { title: 'Retry this unit?', text: 'It becomes available again with its original data.', ok: 'Retry' },
        () => api('POST', specPath(spec) + '/retry', { keys: [u.ref] }), (r) => (r.retried ? 'Retried.' : 'It was no longer failed.'))) : null,
      button('Set priority…', { id: 'prioritize-unit' }, () => act(
        { title: 'Set priority', text: 'New priority for this unit (higher runs first).', ok: 'Set priority', input: 'Priority' },
        (p) => api('POST', specPath(spec) + '/prioritize', { keys: [u.ref], priority: p }), (r, p) => `Priority set to ${p}.`)),
      button('Delete', { class: 'danger', id: 'delete-unit' }, async () => {
        if (!await confirmAction({ title: 'Delete this unit?', text: 'It is removed for good.', ok: 'Delete', danger: true })) return;
        try {
          await api('DELETE', specPath(spec) + '/work_units', { keys: [u.ref] });
          flash('Deleted.');
          location.hash = route(['spec', spec]);
        } catch (e) { flash(e.message, true); }
      }),
    ];
    const tb = u.traceback;
    const rawOpen = raw.open;
    fill(raw, h('summary', {}, 'As the API sends it (JSON)'), h('pre', { class: 'value' }, exactJson(u)));
    raw.open = rawOpen;
    fill(body,
      h('table', { class: 'fields' }, h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v))))),
      h('div', { class: 'actions' }, actions),
      tb !== null ? [h('h2', {}, 'Traceback'), typeof tb === 'string' ? h('pre', { class: 'traceback', id: 'traceback' }, tb) : valueView(tb)] : null,
      h('h2', {}, 'Data'), h('div', { id: 'unit-data' }, valueView(u.data)), raw);
  };
}

/** The live workers, a page at a time. */
function workersView(main, q) {
  const start = q.get('start') || '';
  const table = h('table', { class: 'workers', id: 'workers' });
  const pager = h('div', { class: 'pager' });
  fill(main, h('h1', {}, 'Workers'), table, pager);
  return async () => {
    const page = await api('GET', '/workers?limit=' + PAGE + (start ? '&start=' + encodeURIComponent(start) : ''));
    const rows = page.workers.map((w) => h('tr', { 'data-worker': w.id },
      h('td', {}, h('code', {}, w.id), w.parent ? h('div', { class: 'muted' }, 'child of ', h('code', {}, w.parent)) : null),
      h('td', {}, h('span', { class: 'badge' }, w.mode)),
      h('td', {}, fmtTime(w.last_heartbeat)),
      h('td', {}, fmtTime(w.expires)),
      h('td', {}, w.held_count ? [h('div', {}, `${fmtInt(w.held_count)} unit${w.held_count === 1 ? '' : 's'}`),
        h('ul', { class: 'held' }, w.held.slice(0, 5).map((u) => h('li', {}, link(['spec', u.work_spec], {}, u.work_spec), ' ',
          link(['unit', u.work_spec, u.ref], {}, keyText(u.key))))),
        w.held_count > 5 ? h('div', { class: 'muted' }, '…') : null] : h('span', { class: 'muted' }, 'none')),
      h('td', {}, w.data === null ? '—' : valueView(w.data, 'small'))));
    fill(table,
      h('thead', {}, h('tr', {}, h('th', {}, 'Worker'), h('th', {}, 'Mode'), h('th', {}, 'Last heartbeat'), h('th', {}, 'Expires'), h('th', {}, 'Holds'), h('th', {}, 'Data'))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No live workers.'))));
    fill(pager,
      start ? link(['workers'], {}, '← First page') : null, ' ',
      page.next !== null ? link(['workers'], { start: page.next }, 'Next →') : null);
  };
}

// ---------------------------------------------------------------- router

let generation = 0;
let shownHash = null;
let refresh = null;
let timer = null;

/** Builds the view the hash names and starts polling it. */
function render() {
  if (location.hash !== shownHash) fill($('flash'));
  shownHash = location.hash;
  generation++;
  clearTimeout(timer);
  const main = $('main');
  if (tokenWanted) return tokenView(main);
  const [path, qs] = location.hash.replace(/^#\/?/, '').split('?');
  const parts = path.split('/').map((p) => { try { return decodeURIComponent(p); } catch (_) { return p; } });
  const q = new URLSearchParams(qs || '');
  $('nav-specs').classList.toggle('current', parts[0] !== 'workers');
  $('nav-workers').classList.toggle('current', parts[0] === 'workers');
  if (parts[0] === 'spec' && parts.length === 2) refresh = specView(main, parts[1], q);
  else if (parts[0] === 'unit' && parts.length === 3) refresh = unitView(main, parts[1], parts[2]);
  else if (parts[0] === 'workers') refresh = workersView(main, q);
  else refresh = overview(main);
  document.title = (parts[0] === 'spec' || parts[0] === 'unit' ? parts[1] + ' · ' : parts[0] === 'workers' ? 'workers · ' : '') + 'coordinated';
  poll(generation);
}

async function poll(gen) {
  if (gen !== generation) return;
  if (document.visibilityState !== 'hidden') {
    try {
      await refresh();
      if (gen !== generation) return;
      $('live').textContent = 'live · ' + new Date().toLocaleTimeString();
      $('live').className = '';
      document.body.dataset.loaded = 'true';
    } catch (e) {
      if (gen !== generation || e.status === 401) return;
      $('live').textContent = e.message;
      $('live').className = 'error';
      if (e.status === 404) { fill($('main'), h('h1', {}, 'Not found'), h('p', {}, e.message), link([], {}, 'All work specs')); return; }
    }
  }
  timer = setTimeout(() => poll(gen), POLL_MS);
}

/** Polls at once (after an action), keeping the view. */
function refreshNow() {
  generation++;
  clearTimeout(timer);
  poll(generation);
}

$('mode').textContent = READ_ONLY ? 'read-only' : '';
$('sign-out').hidden = !document.cookie.split(';').some((c) => c.trim().startsWith(TOKEN_COOKIE + '='));
$('sign-out').addEventListener('click', () => {
  document.cookie = `${TOKEN_COOKIE}=; path=/; max-age=0; SameSite=Strict`;
  $('sign-out').hidden = true;
  render();
});
document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') refreshNow(); });
window.addEventListener('hashchange', render);
render();
