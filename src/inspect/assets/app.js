// orca inspect: the page. It follows one run through a server-sent event stream: every
// message is what the page has not seen yet (items after the ones it holds, and the live
// part), so a burst of changes reaches a slow page as one message. Rendering is coalesced
// to one frame.
'use strict';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';

const S = {
  subject: null, mode: null, title: '', structure: null, structureVersion: 0,
  // Items by absolute index: the stream sends the newest (a machine's page asks for older
  // ones when it shows them); `seen` is where the stream goes on from.
  generation: 0, dropped: 0, total: 0, seen: 0, cache: new Map(), live: null, ended: null,
  pending: new Set(), failed: new Set(), retries: 0, layoutSeq: 0,
  // Page commands run one at a time, in order.
  commands: Promise.resolve(),
  // Machine: the item shown (index into items), or null to follow the run.
  pinned: null,
  closed: false, source: null, dirty: false,
  layoutDone: false, flashed: -1,
  selectedOp: null,
};

// --- the stream -----------------------------------------------------------------------

function connect() {
  const from = S.seen;
  const es = new EventSource(`api/stream?from=${from}&generation=${S.generation}&structure_version=${S.structureVersion}`);
  S.source = es;
  const take = (ev) => apply(JSON.parse(ev.data));
  es.addEventListener('view', take);
  es.addEventListener('final', (ev) => { take(ev); S.closed = true; es.close(); connection(); });
  es.onopen = () => { S.retries = 0; connection(); };
  es.onerror = () => {
    es.close();
    if (S.closed) return;
    // Reconnect by hand: the URL must say what the page already holds. An orca that went
    // without saying goodbye (killed) is given up on after a while.
    if (++S.retries > 10) {
      S.closed = true;
      connection('orca is not answering: this is the run as last seen');
      return;
    }
    connection('reconnecting…');
    setTimeout(connect, 1000);
  };
}

function connection(text) {
  const c = $('connection');
  if (S.closed && text) {
    c.textContent = text;
  } else if (S.closed) {
    c.textContent = 'orca has stopped serving: this is the run as it ended';
  } else {
    c.textContent = text || 'live';
  }
}

function apply(v) {
  if (S.subject === null) {
    S.subject = v.subject; S.mode = v.mode; S.title = v.title;
    document.body.dataset.subject = v.subject;
    document.body.dataset.mode = v.mode;
    $('title').textContent = v.title;
    $(v.subject).hidden = false;
  }
  if (v.generation !== S.generation) {
    S.cache.clear(); S.generation = v.generation;
  }
  take(v);
  S.seen = v.from + v.items.length;
  S.live = v.live; S.ended = v.ended; S.notice = v.notice;
  if (v.structure) {
    S.structureVersion = v.structure_version;
    S.structure = v.structure;
    S.layoutDone = false;
    // Laid out once per structure; what changes later is only classes on the drawing. A
    // layout overtaken by a newer structure is dropped.
    const seq = ++S.layoutSeq;
    layout(seq).then(schedule);
  }
  schedule();
}

/// Keeps the items of a view (of the stream or of a fetch), forgetting the oldest when a
/// machine's page holds too many.
function take(v) {
  S.dropped = v.dropped; S.total = v.total;
  v.items.forEach((it, i) => S.cache.set(v.from + i, it));
  if (S.subject === 'machine' && S.cache.size > CACHE_MAX) {
    let n = S.cache.size - CACHE_MAX / 2;
    for (const k of S.cache.keys()) { if (n-- <= 0) break; S.cache.delete(k); }
  }
}

const CACHE_MAX = 20000;

/// Fetches the items around `k` that the page does not hold.
async function fetchAround(k) {
  const from = Math.max(S.dropped, k - 200);
  const key = `${S.generation}:${from}`;
  // Once orca stopped serving, or a range could not be had, nothing is asked again.
  if (S.closed || S.pending.has(key) || S.failed.has(key)) return;
  S.pending.add(key);
  try {
    const res = await fetch(`api/view?from=${from}&limit=400&generation=${S.generation}&structure_version=${S.structureVersion}`);
    if (!res.ok) throw new Error(res.statusText);
    const v = await res.json();
    if (v.generation === S.generation) take(v);
  } catch (e) {
    S.failed.add(key);
  }
  S.pending.delete(key);
  schedule();
}

function schedule() {
  if (S.dirty) return;
  S.dirty = true;
  requestAnimationFrame(() => { S.dirty = false; render(); });
}

function render() {
  if (!S.structure || !S.layoutDone) return;
  if (S.subject === 'machine') renderMachine(); else renderWorkflow();
  renderEnded();
  document.body.dataset.version = String(S.total);
}

function renderEnded() {
  const b = $('ended');
  if (S.notice && !S.ended) {
    b.hidden = false;
    b.textContent = S.notice;
    return;
  }
  if (!S.ended) { b.hidden = true; return; }
  b.hidden = false;
  const e = S.ended;
  let html = `The run ended: <b>${esc(e.ending || '')}</b>`;
  if (e.message) html += ` — ${esc(e.message)}`;
  if (e.resume) html += `. Continue it with <code id="resume">${esc(e.resume)}</code>`;
  b.innerHTML = html;
  $('status').textContent = e.ending || '';
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

const measure = (() => {
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = '12px system-ui, sans-serif';
  return (t) => Math.ceil(ctx.measureText(t).width);
})();

function ms(t) {
  if (t < 1000) return `${t} ms`;
  if (t < 60000) return `${(t / 1000).toFixed(t < 10000 ? 2 : 1)} s`;
  return `${Math.floor(t / 60000)} min ${((t % 60000) / 1000).toFixed(0)} s`;
}

// --- layout (ELK) ---------------------------------------------------------------------

const elk = new ELK();
const ROOT_OPTIONS = {
  'elk.algorithm': 'layered',
  'elk.direction': 'RIGHT',
  'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
  'elk.json.edgeCoords': 'ROOT',
  'elk.json.shapeCoords': 'ROOT',
  'elk.layered.spacing.nodeNodeBetweenLayers': '36',
  'elk.spacing.nodeNode': '20',
  'elk.spacing.edgeLabel': '2',
  'elk.edgeLabels.placement': 'CENTER',
};

async function layout(seq) {
  const drawn = S.subject === 'machine' ? await layoutChart(seq) : await layoutPlan(seq);
  if (drawn) S.layoutDone = true;
}

async function layoutChart(seq) {
  const st = S.structure;
  const node = (s) => {
    const kids = s.children.map(node);
    const n = { id: 'S:' + s.path, labels: [{ text: s.name }], s };
    if (s.kind === 'history' || s.kind === 'deep-history') {
      n.width = 26; n.height = 26;
    } else if (kids.length) {
      n.children = kids;
      n.layoutOptions = { 'elk.padding': '[top=26,left=10,bottom=10,right=10]' };
      if (s.kind === 'parallel') n.layoutOptions['elk.direction'] = 'DOWN';
    } else {
      n.width = Math.max(56, measure(s.name) + 26); n.height = 30;
    }
    return n;
  };
  const edges = [];
  const anywhere = [];
  st.transitions.forEach((t, i) => {
    if (t.source === '') { anywhere.push(t); return; }
    const targets = t.targets.length ? t.targets : [t.source];
    targets.forEach((target, j) => {
      if (target === '') return;
      edges.push({
        id: `T:${i}:${j}`, sources: ['S:' + t.source], targets: ['S:' + target], t,
        labels: [{ text: t.label, width: measure(t.label) * 0.92 + 4, height: 14 }],
      });
    });
  });
  const graph = { id: 'root', layoutOptions: ROOT_OPTIONS, children: st.states.children.map(node), edges };
  const done = await elk.layout(graph);
  if (seq !== S.layoutSeq) return false;
  const out = $('diagram');
  out.replaceChildren();
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '9', refY: '5', markerWidth: '8', markerHeight: '8', markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' });
  marker.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8a949e' }));
  defs.append(marker);
  out.append(defs);
  const states = svg('g'); const edgeLayer = svg('g');
  out.append(states, edgeLayer);
  const draw = (n) => {
    const s = n.s;
    const g = svg('g', { class: `state ${s.kind}${n.children ? ' parent' : ''}`, 'data-state': s.path });
    if (s.kind === 'history' || s.kind === 'deep-history') {
      g.append(svg('circle', { cx: n.x + 13, cy: n.y + 13, r: 12 }));
      const t = svg('text', { x: n.x + 13, y: n.y + 17, 'text-anchor': 'middle' });
      t.textContent = s.kind === 'history' ? 'H' : 'H*';
      g.append(t);
    } else {
      g.append(svg('rect', { x: n.x, y: n.y, width: n.width, height: n.height, rx: 6 }));
      if (s.kind === 'final') g.append(svg('rect', { class: 'inner', x: n.x + 3, y: n.y + 3, width: n.width - 6, height: n.height - 6, rx: 4 }));
      const t = svg('text', n.children ? { x: n.x + 8, y: n.y + 16 } : { x: n.x + n.width / 2, y: n.y + n.height / 2 + 4, 'text-anchor': 'middle' });
      t.textContent = (s.kind === 'parallel' ? '‖ ' : '') + s.name;
      g.append(t);
      const parent = s.path.includes('.') ? s.path.slice(0, s.path.lastIndexOf('.')) : '';
      const p = findState(st.states, parent);
      if (p && p.initial === s.path) g.append(svg('circle', { class: 'initial', cx: n.x + 6, cy: n.y + 6, r: 3 }));
    }
    g.append(Object.assign(svg('title'), { textContent: s.path }));
    states.append(g);
    (n.children || []).forEach(draw);
  };
  let width = 0, height = 0;
  for (const n of done.children) { draw(n); width = Math.max(width, n.x + n.width); height = Math.max(height, n.y + n.height); }
  for (const e of done.edges) {
    const g = svg('g', { class: 'edge', 'data-transition': e.t.described });
    for (const sec of e.sections || []) {
      let d = `M${sec.startPoint.x},${sec.startPoint.y}`;
      for (const b of sec.bendPoints || []) d += ` L${b.x},${b.y}`;
      d += ` L${sec.endPoint.x},${sec.endPoint.y}`;
      g.append(svg('path', { d, 'marker-end': 'url(#arrow)' }));
      width = Math.max(width, sec.endPoint.x); height = Math.max(height, sec.endPoint.y);
    }
    for (const l of e.labels || []) {
      if (l.x === undefined) continue;
      const t = svg('text', { x: l.x, y: l.y + 11 });
      t.textContent = l.text;
      g.append(t);
      width = Math.max(width, l.x + l.width); height = Math.max(height, l.y + l.height);
    }
    edgeLayer.append(g);
  }
  out.setAttribute('width', width + 20);
  out.setAttribute('height', height + 20);
  out.setAttribute('viewBox', `-10 -10 ${width + 20} ${height + 20}`);
  $('anywhere').textContent = anywhere.length ? 'In any state: ' + anywhere.map((t) => `${t.label} → ${t.targets.join(' ') || '(stays)'}`).join('; ') : '';
  return true;
}

function findState(s, path) {
  if (s.path === path) return s;
  for (const c of s.children) {
    if (path === c.path || path.startsWith(c.path + '.')) return findState(c, path);
  }
  return null;
}

// --- machines -------------------------------------------------------------------------

/// The step shown (absolute): the pinned one, or the last.
function shown() {
  if (S.mode !== 'step' && S.pinned !== null && S.pinned < S.total) return Math.max(S.pinned, S.dropped);
  return S.total - 1;
}

/// Configuration, context and time after step `k`; fetched first if the page lacks it.
function moment(k) {
  const it = S.cache.get(k);
  if (!it) {
    if (k >= 0) fetchAround(k);
    return null;
  }
  // A step that kept the context does not repeat it: the last one given holds.
  let j = k;
  while (S.cache.has(j) && S.cache.get(j).same_context) j--;
  if (!S.cache.has(j)) {
    fetchAround(k);
    return null;
  }
  return { config: it.config || [], context: S.cache.get(j).context, status: it.status || '', t: it.t };
}

function renderMachine() {
  const k = shown();
  const m = moment(k);
  if (!m) { $('moment').textContent = `step ${k}…`; return; }
  const active = new Set(m.config);
  for (const g of document.querySelectorAll('#diagram .state')) {
    g.classList.toggle('active', active.has(g.dataset.state));
  }
  // Flash what the shown step took, once per step.
  if (k !== S.flashed) {
    S.flashed = k;
    const taken = new Set(S.cache.get(k).taken);
    for (const g of document.querySelectorAll('#diagram .edge')) {
      if (taken.has(g.dataset.transition)) {
        g.classList.remove('flash');
        void g.getBBox();
        g.classList.add('flash');
        setTimeout(() => g.classList.remove('flash'), 900);
      }
    }
  }
  if (!S.ended) $('status').textContent = m.status;
  $('config').replaceChildren(...m.config.map((p) => el('li', { text: p })));
  $('context').replaceChildren(tree(m.context));
  renderTimeline(k);
  renderEnabled(active);
  renderTimers();
  renderLog(k);
}

function renderTimeline(k) {
  const tl = $('timeline');
  const live = S.live || {};
  if (S.mode === 'step') {
    // The stepper's line: applied inputs and undone ones that `forward` redoes.
    const inputs = live.inputs || S.total;
    tl.max = String(Math.max(inputs - 1, 0));
    if (!S.dragging) tl.value = String(Math.max((live.cursor || S.total) - 1, 0));
    $('back').disabled = (live.cursor || 1) <= 1;
    $('forward').disabled = (live.cursor || 0) >= inputs;
    $('moment').textContent = `step ${Math.max((live.cursor || 1) - 1, 0)} of ${Math.max(inputs - 1, 0)} · ${ms(live.t || 0)}`;
    $('follow').hidden = true;
  } else {
    tl.min = String(S.dropped);
    tl.max = String(Math.max(S.total - 1, 0));
    tl.value = String(k);
    $('back').disabled = k <= S.dropped;
    $('forward').disabled = k >= S.total - 1;
    const it = S.cache.get(k);
    $('moment').textContent = `step ${k} of ${S.total - 1} · ${ms(it ? it.t : 0)}`;
    $('follow').classList.toggle('on', S.pinned === null);
  }
}

function tree(v) {
  if (v === null || typeof v !== 'object') return scalar(v);
  const ul = el('ul');
  const entries = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  for (const [key, x] of entries) {
    const li = el('li', { 'data-key': String(key) });
    if (x !== null && typeof x === 'object') {
      const d = el('details', { open: '' });
      d.append(el('summary', {}, el('span', { class: 'key', text: String(key) }), Array.isArray(x) ? ` [${x.length}]` : ' {…}'));
      d.append(tree(x));
      li.append(d);
    } else {
      li.append(el('span', { class: 'key', text: String(key) }), ': ', scalar(x));
    }
    ul.append(li);
  }
  return ul;
}

function scalar(x) {
  const cls = typeof x === 'string' ? 'str' : typeof x === 'number' ? 'num' : '';
  return el('span', { class: cls, text: JSON.stringify(x) });
}

/// Events: in a stepper session, the ones the session says are offered (guards evaluated);
/// in a run, the events of the transitions leaving the active states.
function renderEnabled(active) {
  const box = $('enabled');
  let offers;
  if (S.mode === 'step' && S.live && S.live.offered) {
    offers = S.live.offered.map((o) => ({ event: o.event, title: `${o.transition}${o.guard ? ` [${o.guard}]` : ''}`, blocked: o.holds === false }));
  } else {
    const seen = new Map();
    for (const t of S.structure.transitions) {
      if (!active.has(t.source) && t.source !== '') continue;
      const ev = t.label.split(' [')[0];
      if (ev === 'always' || ev.startsWith('after ')) continue;
      for (const name of ev.split(' ')) {
        // `done.*` and `error.*` are the runtime's to send: a page sending them would fake
        // a child's result.
        if (seen.has(name) || name.includes('*') || /^(done|error)(\.|$)/.test(name)) continue;
        seen.set(name, { event: name, title: t.described, blocked: false });
      }
    }
    offers = [...seen.values()];
  }
  const key = JSON.stringify(offers) + (S.ended ? 'x' : '') + (S.mode === 'recorded' || shown() !== S.total - 1 ? 'r' : '');
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  const canSend = !S.ended && S.mode !== 'recorded' && shown() === S.total - 1;
  box.replaceChildren(...offers.map((o) => {
    const b = el('button', { class: 'event' + (o.blocked ? ' blocked' : ''), 'data-event': o.event, title: o.title, text: o.event });
    b.disabled = !canSend;
    b.addEventListener('click', () => sendEvent(o.event, $('event-data').value));
    b.addEventListener('mouseenter', () => why(o.event));
    return b;
  }));
  $('send-form').hidden = !canSend;
  if (!offers.length) box.textContent = 'No events are offered.';
}

async function why(name) {
  if (S.mode !== 'step' || S.ended) return;
  const r = await command(`why ${name} ${$('event-data').value.trim()}`.trim());
  if (r && r.text) $('why').textContent = r.text;
}

/// Runs a stepper command from the page, after those sent before it.
function command(line) {
  return enqueue(() => send(line));
}

function enqueue(fn) {
  const run = S.commands.then(fn);
  S.commands = run.catch(() => null);
  return run;
}

async function send(line) {
  const res = await fetch('api/command', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ line }) });
  const box = S.subject === 'workflow' ? $('wf-reply') : $('reply');
  if (!res.ok) { box.textContent = await res.text(); return null; }
  const r = await res.json();
  box.textContent = r.error || '';
  return r;
}

async function sendEvent(name, dataText) {
  name = name.trim();
  if (!name) return;
  const text = (dataText || '').trim();
  if (S.mode === 'step') {
    await command(`send ${name} ${text}`.trim());
    return;
  }
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { $('reply').textContent = `the data is not JSON: ${e.message}`; return; }
  }
  S.pinned = null;
  const res = await fetch('api/event', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, data }) });
  $('reply').textContent = res.ok ? '' : await res.text();
}

function renderTimers() {
  const timers = (S.live && S.live.timers) || [];
  const rows = timers.map((t) => el('li', { text: `${t.event} at ${ms(t.due)}${t.id ? ` (${t.id})` : ''}` }));
  if (!timers.length) rows.push(el('li', { class: 'muted', text: 'none pending' }));
  // Timers are known for the run's latest moment; a step shown from the past says so.
  if (S.mode !== 'step' && shown() !== S.total - 1) rows.unshift(el('li', { class: 'muted', text: 'as of the latest step:' }));
  $('timers').replaceChildren(...rows);
}

const LOG_ROWS = 200;

function renderLog(k) {
  const body = $('log').querySelector('tbody');
  // The rows held around the moment shown: the newest ones while following the run.
  const last = Math.min(S.total - 1, k + LOG_ROWS / 4);
  const start = Math.max(S.dropped, last - LOG_ROWS + 1);
  const key = `${S.generation}:${S.total}:${k}:${S.cache.size}`;
  if (body.dataset.key === key) return;
  body.dataset.key = key;
  const rows = [];
  for (let i = start; i <= last; i++) {
    const it = S.cache.get(i);
    if (!it) continue;
    const tr = el('tr', { 'data-step': String(i) },
      el('td', { text: String(i) }),
      el('td', { text: ms(it.t) }),
      el('td', { text: it.input }),
      el('td', { text: it.ignored ? '(ignored)' : it.taken.join(', ') }));
    if (i === k) tr.classList.add('current');
    if (it.ignored) tr.classList.add('ignored');
    if (it.event === null) tr.classList.add('clock');
    tr.addEventListener('click', () => moveTo(i));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  $('log-count').textContent = `(${S.total} steps${S.dropped ? `; the first ${S.dropped} not kept` : ''})`;
}

/// Moves the timeline to absolute step `n`: the stepper goes back or forward exactly; a
/// run or a journal is shown as it was after that step.
async function moveTo(n) {
  if (S.mode === 'step') {
    // `goto` is counted where the session is when it runs it (the terminal may have moved
    // it meanwhile): it becomes `back N` or `forward N` there.
    return command(`goto ${n}`);
  }
  const k = Math.min(Math.max(n, S.dropped), S.total - 1);
  S.pinned = k === S.total - 1 && !S.ended ? null : k;
  schedule();
}

// A run's timeline follows the slider as it moves; a stepper's moves the session once, where
// the slider is let go.
$('timeline').addEventListener('input', (e) => { if (S.mode !== 'step') moveTo(Number(e.target.value)); });
$('timeline').addEventListener('change', (e) => { if (S.mode === 'step') moveTo(Number(e.target.value)); });
$('timeline').addEventListener('pointerdown', () => { S.dragging = true; });
window.addEventListener('pointerup', () => { S.dragging = false; });
$('back').addEventListener('click', () => (S.mode === 'step' ? command('back') : moveTo(shown() - 1)));
$('forward').addEventListener('click', () => (S.mode === 'step' ? command('forward') : moveTo(shown() + 1)));
$('follow').addEventListener('click', () => { S.pinned = null; schedule(); });
$('send-form').addEventListener('submit', (e) => { e.preventDefault(); sendEvent($('event-name').value, $('event-data').value); });

// --- workflows ------------------------------------------------------------------------

async function layoutPlan(seq) {
  const ops = S.structure.ops;
  const byParent = new Map();
  for (const op of ops) {
    if (op.parent === null) continue;
    if (!byParent.has(op.parent)) byParent.set(op.parent, []);
    byParent.get(op.parent).push(op);
  }
  const node = (op) => {
    const kids = (byParent.get(op.path) || []).map(node);
    const n = { id: 'O:' + op.path, op };
    if (kids.length) {
      n.children = kids;
      n.layoutOptions = { 'elk.padding': '[top=24,left=8,bottom=8,right=8]' };
    } else {
      n.width = Math.max(60, measure(op.name) + 20); n.height = 26;
    }
    return n;
  };
  const edges = [];
  for (const op of ops) for (const a of op.after) edges.push({ id: `D:${a}>${op.path}`, sources: ['O:' + a], targets: ['O:' + op.path] });
  const top = byParent.get('') || [];
  const graph = { id: 'root', layoutOptions: ROOT_OPTIONS, children: top.map(node), edges };
  const done = await elk.layout(graph);
  if (seq !== S.layoutSeq) return false;
  const out = $('deps');
  out.replaceChildren();
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow2', viewBox: '0 0 10 10', refX: '9', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' });
  marker.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8a949e' }));
  defs.append(marker);
  out.append(defs);
  let width = 0, height = 0;
  const draw = (n) => {
    const g = svg('g', { class: `op${n.children ? ' parent' : ''}`, 'data-op': n.op.path });
    g.append(svg('rect', { x: n.x, y: n.y, width: n.width, height: n.height, rx: 5 }));
    const t = svg('text', n.children ? { x: n.x + 6, y: n.y + 15 } : { x: n.x + n.width / 2, y: n.y + 17, 'text-anchor': 'middle' });
    t.textContent = n.op.name;
    g.append(t);
    g.addEventListener('click', () => select(n.op.path));
    out.append(g);
    width = Math.max(width, n.x + n.width); height = Math.max(height, n.y + n.height);
    (n.children || []).forEach(draw);
  };
  done.children.forEach(draw);
  for (const e of done.edges) {
    for (const sec of e.sections || []) {
      let d = `M${sec.startPoint.x},${sec.startPoint.y}`;
      for (const b of sec.bendPoints || []) d += ` L${b.x},${b.y}`;
      d += ` L${sec.endPoint.x},${sec.endPoint.y}`;
      out.append(svg('path', { class: 'dep', d, fill: 'none', stroke: '#8a949e', 'marker-end': 'url(#arrow2)' }));
    }
  }
  out.setAttribute('viewBox', `-5 -5 ${width + 10} ${height + 10}`);
  out.setAttribute('height', Math.min(height + 10, 420));
  return true;
}

const RUNNING = new Set(['Analyzing', 'Researching', 'Decomposing', 'Executing', 'Integrating', 'Compensating']);

/// Per operation: state, phase, attempt, first and last change times, the changes.
function opStates() {
  const ops = new Map();
  for (const it of S.cache.values()) {
    let o = ops.get(it.op);
    if (!o) { o = { first: it.t, last: it.t, changes: [] }; ops.set(it.op, o); }
    o.state = it.to; o.phase = it.phase; o.attempt = it.attempt; o.last = it.t; o.error = it.error || o.error;
    if (it.output !== undefined && it.output !== null) o.output = it.output;
    o.changes.push(it);
  }
  // What the run reported last wins (a recorded run's replay, or the end of a live one).
  const final = (S.live && S.live.ops) || {};
  for (const [path, f] of Object.entries(final)) {
    const o = ops.get(path) || { first: null, last: null, changes: [] };
    Object.assign(o, { state: f.state, phase: f.phase, attempt: f.attempt, output: f.output, error: f.error || o.error });
    ops.set(path, o);
  }
  return ops;
}

function renderWorkflow() {
  const ops = opStates();
  const plan = S.structure.ops;
  let t0 = Infinity, t1 = 0;
  for (const o of ops.values()) if (o.first !== null) { t0 = Math.min(t0, o.first); t1 = Math.max(t1, o.last); }
  if (!isFinite(t0)) { t0 = 0; t1 = 1; }
  const span = Math.max(t1 - t0, 1);
  const body = $('ops').querySelector('tbody');
  const rows = [];
  const known = new Set(plan.map((p) => p.path));
  // Operations a decompose added after the plan was drawn, until the plan is sent again.
  const extra = [...ops.keys()].filter((p) => !known.has(p)).map((p) => ({ path: p, name: p.split('.').pop(), depth: p.split('.').length }));
  for (const p of [...plan, ...extra]) {
    const o = ops.get(p.path) || {};
    const state = o.state || 'Pending';
    const running = RUNNING.has(state);
    const dur = o.first !== null && o.first !== undefined ? o.last - o.first : null;
    const gantt = el('td', { class: 'gantt' });
    if (dur !== null) {
      const bar = el('div', { class: `bar ${state}` });
      bar.style.left = `${((o.first - t0) / span) * 100}%`;
      bar.style.width = `${Math.max((dur / span) * 100, 0.4)}%`;
      bar.title = `${ms(o.first - t0)} → ${ms(o.last - t0)}`;
      gantt.append(bar);
    }
    const name = el('td', { text: p.path === '' ? (S.structure.id || 'workflow') : p.name });
    name.style.paddingLeft = `${8 + p.depth * 14}px`;
    const tr = el('tr', { class: 'op-row', 'data-op': p.path, 'data-state': state },
      name,
      el('td', {}, el('span', { class: `st ${state}`, text: state })),
      el('td', { text: o.phase || '' }),
      el('td', { text: o.attempt ? String(o.attempt) : '' }),
      el('td', { text: dur !== null ? ms(dur) : '' }),
      gantt);
    if (S.selectedOp === p.path) tr.classList.add('selected');
    tr.addEventListener('click', () => select(p.path));
    rows.push(tr);
    const node = document.querySelector(`#deps .op[data-op="${CSS.escape(p.path)}"]`);
    if (node) {
      node.setAttribute('class', `op ${state}${running ? ' running' : ''}${node.classList.contains('parent') ? ' parent' : ''}`);
    }
  }
  body.replaceChildren(...rows);
  const done = [...ops.values()].filter((o) => o.state === 'Succeeded').length;
  if (!S.ended) $('status').textContent = `${done}/${plan.length + extra.length} succeeded`;
  renderChanges(t0);
  renderDetail(ops);
  renderSimulation();
}

/// A simulated workflow (`orca step --inspect`): the work it waits for, answered from here.
function renderSimulation() {
  const box = $('wf-step');
  box.hidden = S.mode !== 'step';
  if (box.hidden) return;
  const live = S.live || {};
  const waiting = live.would_run || [];
  const key = JSON.stringify(waiting) + (S.ended ? 'x' : '');
  $('wf-now').textContent = `virtual time ${ms(live.now || 0)}`;
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  const rows = waiting.map((w) => {
    const ok = el('button', { class: 'ok', 'data-op': w.op, text: 'ok' });
    ok.addEventListener('click', () => command(`ok ${w.op} ${$('wf-data').value.trim()}`.trim()));
    const fail = el('button', { class: 'fail', 'data-op': w.op, text: 'fail' });
    fail.addEventListener('click', () => command(`fail ${w.op}`));
    return el('div', { class: 'would', 'data-op': w.op },
      el('b', { text: w.op }), ` ${w.what}${w.attempt > 1 ? ` (attempt ${w.attempt})` : ''}`,
      el('code', { text: w.work, title: w.work }), ok, fail);
  });
  $('would-run').replaceChildren(...rows);
  if (!rows.length) $('would-run').textContent = S.ended ? 'The session ended.' : 'Nothing waits for an answer.';
  for (const b of box.querySelectorAll('button')) b.disabled = !!S.ended;
}

$('wf-back').addEventListener('click', () => command('back'));
$('wf-forward').addEventListener('click', () => command('forward'));
$('wf-tick').addEventListener('click', () => command('tick'));
$('wf-form').addEventListener('submit', (e) => { e.preventDefault(); command($('wf-line').value); $('wf-line').value = ''; });

function renderChanges(t0) {
  const body = $('changes').querySelector('tbody');
  const rows = [];
  for (let i = Math.max(S.dropped, S.total - LOG_ROWS); i < S.total; i++) {
    const it = S.cache.get(i);
    if (!it) continue;
    rows.push(el('tr', { 'data-op': it.op },
      el('td', { text: ms(it.t - t0) }),
      el('td', { text: it.op || '(root)' }),
      el('td', { text: it.event }),
      el('td', { text: `${it.from ? it.from + ' → ' : ''}${it.to}${it.attempt > 1 ? ` (attempt ${it.attempt})` : ''}${it.error ? `: ${it.error}` : ''}` })));
  }
  body.replaceChildren(...rows);
  $('changes-count').textContent = S.dropped ? `(${S.total}; the first ${S.dropped} not kept)` : `(${S.total})`;
}

function select(path) {
  S.selectedOp = path;
  S.selectedState = undefined;
  schedule();
  refreshLogs();
}

let logTimer = null;

async function refreshLogs() {
  clearTimeout(logTimer);
  if (S.selectedOp === null) return;
  const path = S.selectedOp;
  try {
    const res = await fetch(`api/logs?op=${encodeURIComponent(path)}`);
    if (res.ok && S.selectedOp === path) {
      const tails = await res.json();
      const box = $('detail-logs');
      if (box) box.replaceChildren(...tails.flatMap((t) => [el('div', { class: 'muted', text: t.file }), el('pre', { text: t.tail || '(empty)' })]));
    }
  } catch (e) { /* the server stopped: the last tails stay shown */ }
  if (!S.closed) logTimer = setTimeout(refreshLogs, 1000);
}

function renderDetail(ops) {
  const path = S.selectedOp;
  if (path === null) return;
  const p = S.structure.ops.find((x) => x.path === path) || { path, name: path, work: {} };
  const o = ops.get(path) || {};
  $('detail-title').textContent = path === '' ? `${S.structure.id} (the workflow)` : path;
  let body = $('detail-body');
  if (body.dataset.op !== path) {
    body.dataset.op = path;
    body.replaceChildren(el('div', { id: 'detail-facts' }), el('h2', { text: 'Output' }), el('pre', { id: 'detail-output' }), el('h2', { text: 'Logs (tails)' }), el('div', { id: 'detail-logs' }));
  }
  // A change of state is when new output is likeliest: the tails are asked for at once.
  if (o.state !== S.selectedState) {
    S.selectedState = o.state;
    refreshLogs();
  }
  const facts = [`state: ${o.state || 'Pending'}`];
  if (o.phase) facts.push(`phase: ${o.phase}`);
  if (o.attempt) facts.push(`attempt: ${o.attempt}`);
  if (o.error) facts.push(`error: ${o.error}`);
  for (const [ph, w] of Object.entries(p.work || {})) facts.push(`${ph}: ${w}`);
  if (p.after && p.after.length) facts.push(`after: ${p.after.join(', ')}`);
  $('detail-facts').replaceChildren(...facts.map((f) => el('div', { text: f })));
  $('detail-output').textContent = o.output !== undefined ? JSON.stringify(o.output, null, 2) : (S.ended ? 'null' : '(when it succeeds)');
}

connect();
