// The posture page. It reads one document, the JSON `spreadguard audit -o json` writes:
// inlined in the page (`audit -o html`) or from `api/posture` (`serve --ui`), nothing else.
// Fields that a report may lack (running pods, predicted placement, budgets, autoscalers,
// node templates) are shown when present and said to be absent otherwise.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const ROW = 30; // px, as --row in the stylesheet
  const OVERSCAN = 12;
  const LIST_MAX = 200; // items listed per zone panel list before "and N more"
  const SEV_RANK = { deny: 3, warn: 2, info: 1 };
  const SEV_SHAPE = { deny: '✖', warn: '▲', info: '●' };
  // Zone-loss levels, in risk order (sorting by risk puts the first first).
  const LEVELS = {
    all: { rank: 0, shape: '✖', text: 'loses all' },
    down: { rank: 1, shape: '■', text: 'none ready' },
    budget: { rank: 2, shape: '▲', text: 'below budget' },
    open: { rank: 3, shape: '◇', text: 'unconstrained' },
    part: { rank: 4, shape: '◐', text: 'loses some' },
    unknown: { rank: 5, shape: '?', text: 'unknown' },
    none: { rank: 6, shape: '●', text: 'loses none' },
  };
  const NOT_WORKLOADS = new Set(['HorizontalPodAutoscaler', 'PodDisruptionBudget']);

  let doc = null;
  let zones = [];
  let rows = [];      // one per workload
  let others = [];    // HPAs and PDBs judged as objects of their own
  let view = [];      // what the matrix shows: row indexes, and ~group indexes for headers
  let groups = [];    // {ns, count, worst}
  const st = { ns: '', rule: '', sev: '', text: '', group: true, sort: 'risk', dir: 1, active: 0, zone: null };
  let firstPaint = true;
  let opener = null; // what had the focus when the detail opened

  const esc = (s) => String(s).replace(/[&<>"']/g, (c) =>
    ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const plural = (n, one, many) => `${n.toLocaleString('en')} ${n === 1 ? one : (many || one + 's')}`;
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);

  function status(text, error) {
    const el = $('status');
    el.textContent = text || '';
    el.classList.toggle('error', !!error);
  }

  // === loading ===

  function load() {
    const text = $('posture-data').textContent.trim();
    if (text) {
      try {
        start(JSON.parse(text), null);
      } catch (e) {
        status('The inlined report could not be read: ' + e.message, true);
      }
      return;
    }
    $('refresh').hidden = false;
    $('refresh').addEventListener('click', fetchDocument);
    fetchDocument();
  }

  async function fetchDocument() {
    status('Reading api/posture…');
    try {
      const r = await fetch('api/posture', { headers: { accept: 'application/json' }, cache: 'no-store' });
      if (r.status === 503) {
        status('The first scan is still running; trying again in 2 seconds…');
        setTimeout(fetchDocument, 2000);
        return;
      }
      if (!r.ok) throw new Error('HTTP ' + r.status);
      start(await r.json(), 'server');
    } catch (e) {
      status('Could not read api/posture: ' + e.message, true);
    }
  }

  // === the model ===

  function worstFinding(findings) {
    let w = null;
    for (const f of findings || []) if (!w || SEV_RANK[f.severity] > SEV_RANK[w.severity]) w = f;
    return w;
  }

  // How many of the workload's pods the budgets let go at once (the tightest), or null.
  function allowed(e) {
    const b = e.disruptionBudgets;
    if (!Array.isArray(b) || !b.length) return null;
    let min = null;
    for (const x of b) if (typeof x.allowedUnavailable === 'number') min = min === null ? x.allowedUnavailable : Math.min(min, x.allowedUnavailable);
    return min;
  }

  // What losing the worst zone does: to the ready pods when they were read, else to the
  // predicted placement.
  function lossOf(e) {
    const a = e.actual, p = e.placement;
    let basis, w, total;
    if (a) {
      if (!a.ready) return { basis: 'actual', level: 'down', total: 0, lost: 0, left: 0, zone: null, share: 0 };
      basis = 'actual'; w = a.worstZoneLoss; total = a.ready;
    } else if (p && p.worstZoneLoss) {
      basis = 'predicted'; w = p.worstZoneLoss; total = w.lost + w.left;
      if (w.zone === null || w.zone === undefined) {
        // Nothing spreads the replicas over zones: one zone may hold them all.
        return { basis, level: 'open', zone: null, lost: total, left: 0, total, share: 0.5 };
      }
    } else {
      return { basis: null, level: 'unknown', share: 1 };
    }
    let below = false;
    if (basis === 'actual' && a.budget && a.budget.zones) {
      below = !!(a.budget.zones[w.zone] && a.budget.zones[w.zone].belowBudget);
    } else {
      const budget = allowed(e);
      below = budget !== null && w.lost > budget;
    }
    let level;
    if (w.lost === 0) level = 'none';
    else if (w.left === 0) level = 'all';
    else if (below) level = 'budget';
    else level = 'part';
    const floor = basis === 'predicted' && p.basis === 'bounded';
    return { basis, level, zone: w.zone, lost: w.lost, left: w.left, total, floor, share: total ? w.left / total : 0 };
  }

  function toRow(e, i) {
    const worst = worstFinding(e.findings);
    const loss = lossOf(e);
    const rules = new Set((e.findings || []).map((f) => f.rule));
    const text = [e.namespace || '', e.kind, e.name, e.source, ...(e.findings || []).map((f) => f.rule + ' ' + f.message)]
      .join('\n').toLowerCase();
    return {
      i, e, ns: e.namespace || '', worst, loss, rules, text,
      sev: worst ? SEV_RANK[worst.severity] : 0,
      az: (e.actual && e.actual.zones) || null,
      pz: (e.placement && e.placement.zones) || null,
    };
  }

  function start(d, origin) {
    doc = d;
    const results = Array.isArray(d.results) ? d.results : [];
    rows = [];
    others = [];
    results.forEach((e, i) => (NOT_WORKLOADS.has(e.kind) ? others : rows).push(e));
    rows = rows.map(toRow);
    const zs = new Set(Object.keys((d.topology && d.topology.zones) || {}));
    for (const r of rows) {
      for (const z in r.az || {}) zs.add(z);
      for (const z in r.pz || {}) zs.add(z);
    }
    zones = [...zs].sort();
    if (st.zone && !zones.includes(st.zone)) st.zone = null;
    status('');
    header(origin);
    summary();
    topology();
    filterOptions();
    matrixHead();
    $('summary').hidden = false;
    $('topology').hidden = false;
    $('matrix-section').hidden = false;
    otherObjects();
    update();
    if (st.zone) zonePanel(st.zone, false);
  }

  // === header, summary, topology ===

  function header(origin) {
    const t = doc.topology || {};
    const scan = doc.scan;
    let text = t.source === 'assumed'
      ? `Assumed topology: ${Object.keys(t.zones || {}).length} zones under ${t.zoneKey} (no nodes given)`
      : `${plural(t.nodes || 0, 'node')} in ${plural(Object.keys(t.zones || {}).length, 'zone')} under ${t.zoneKey}`;
    if (scan) {
      text += ` · scanned ${scan.at} from ${scan.workloads === 'cluster' ? 'the cluster' : scan.workloads === 'manifests' ? 'manifest files' : 'no workload source'}`;
    } else {
      text += origin ? '' : ' · report file';
    }
    $('source').textContent = text;
  }

  function summary() {
    const s = doc.summary || {};
    const f = s.findings || {};
    const items = [
      ['Workloads', (rows.length).toLocaleString('en')],
      ['Denied', `${SEV_SHAPE.deny} ${(s.denied || 0).toLocaleString('en')}`],
      ['Allowed', (s.allowed || 0).toLocaleString('en')],
      ['Would be patched', (s.patched || 0).toLocaleString('en')],
      ['Findings', `${SEV_SHAPE.deny} ${f.deny || 0} deny · ${SEV_SHAPE.warn} ${f.warn || 0} warn · ${SEV_SHAPE.info} ${f.info || 0} info`],
    ];
    const counts = {};
    for (const r of rows) counts[r.loss.level] = (counts[r.loss.level] || 0) + 1;
    items.push(['Worst zone loss', Object.keys(LEVELS).filter((l) => counts[l])
      .map((l) => `${LEVELS[l].shape} ${counts[l].toLocaleString('en')} ${LEVELS[l].text}`).join(' · ') || 'none']);
    const hasActual = rows.some((r) => r.e.actual), hasPlacement = rows.some((r) => r.e.placement);
    items.push(['Placement', hasActual
      ? 'ready pods read from the cluster' + (hasPlacement ? ', with the predicted placement' : '')
      : hasPlacement ? 'predicted (no running pods read)' : 'not in this report (no running pods read, no prediction)']);
    if (Array.isArray(doc.skipped) && doc.skipped.length) {
      items.push(['Not judged', doc.skipped.map((k) => `${(k.documents || []).length} ${k.kind} (${k.reason})`).join(' · ')]);
    }
    const scan = doc.scan;
    if (scan) {
      items.push(['Scan', `${scan.at}, ${scan.durationMs} ms, every ${scan.intervalSeconds} s; pods ${scan.pods ? 'read' : 'not read'}`]);
      if (scan.error) items.push(['Scan problem', scan.error]);
    }
    $('summary-list').innerHTML = items.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('');
  }

  function zeroIfLost() {
    // Per zone: the workloads whose every ready pod (or, unread, predicted replica) is there.
    const out = {};
    for (const z of zones) out[z] = [];
    for (const r of rows) {
      if (r.loss.level === 'all') (out[r.loss.zone] || (out[r.loss.zone] = [])).push(r);
    }
    return out;
  }

  function topology() {
    const t = doc.topology || {};
    const nodes = t.zones || {};
    const zero = zeroIfLost();
    $('topology-line').textContent = `Zone key ${t.zoneKey}; ${plural(t.nodes || 0, 'node')}, ${plural(t.unzonedNodes || 0, 'unzoned node')}` +
      (t.source === 'assumed' ? ' (assumed: node counts unknown)' : '');
    $('zones-table').tBodies[0].innerHTML = zones.map((z) =>
      `<tr><th scope="row"><button type="button" class="linkish" data-zone="${esc(z)}">${esc(z)}</button></th>` +
      `<td class="num">${z in nodes ? nodes[z] : '–'}</td><td class="num">${(zero[z] || []).length}</td></tr>`).join('');
    const tpl = t.nodeTemplates;
    $('templates').innerHTML = Array.isArray(tpl) && tpl.length
      ? `<h3>Node templates</h3><ul>${tpl.map((x) => `<li>${esc(x.name)} (${esc(x.source || 'policy')}): ${x.zone ? 'zone ' + esc(x.zone) : 'a zone the provisioner picks'}` +
        `${x.taints && x.taints.length ? ', taints ' + esc(x.taints.join(', ')) : ''}${x.exhausted ? ', exhausted (cannot add a node)' : ''}</li>`).join('')}</ul>`
      : '<p class="note">No node templates in this report.</p>';
  }

  function otherObjects() {
    $('others').hidden = !others.length;
    $('others-list').innerHTML = others.map((e) => {
      const w = worstFinding(e.findings);
      return `<li>${esc(e.kind)} ${esc(e.namespace ? e.namespace + '/' : '')}${esc(e.name)}: ` +
        (w ? `<span class="sev-${esc(w.severity)}">${SEV_SHAPE[w.severity] || ''} ${esc(w.severity)}</span> <span class="rule">${esc(w.rule)}</span> ${esc(w.message)}` : 'no finding') + '</li>';
    }).join('');
  }

  function filterOptions() {
    const nss = [...new Set(rows.map((r) => r.ns))].sort();
    const rules = [...new Set(rows.flatMap((r) => [...r.rules]))].sort();
    const fill = (sel, values, first) => {
      const keep = sel.value;
      sel.innerHTML = `<option value="">${first}</option>` + values.map((v) => `<option value="${esc(v)}">${esc(v || '(none)')}</option>`).join('');
      sel.value = values.includes(keep) ? keep : '';
    };
    fill($('f-ns'), nss, 'all');
    fill($('f-rule'), rules, 'any');
    st.ns = $('f-ns').value;
    st.rule = $('f-rule').value;
  }

  // === the matrix ===

  function sortButton(key, label) {
    const on = st.sort === key;
    const dir = on ? (st.dir > 0 ? 'ascending' : 'descending') : 'none';
    return { attr: `aria-sort="${dir}"`, html: `<button type="button" data-sort="${key}" aria-label="Sort by ${label}">${esc(label)} ${on ? (st.dir > 0 ? '↑' : '↓') : '↕'}</button>` };
  }

  function matrixHead() {
    const wl = sortButton('name', 'Workload');
    const loss = sortButton('risk', 'Zone loss');
    const fnd = sortButton('finding', 'Worst finding');
    const cols = `<colgroup><col class="wl">${zones.map(() => '<col class="z">').join('')}<col class="loss"><col class="fnd"></colgroup>`;
    const zoneTh = zones.map((z) => `<th scope="col" class="zone"><button type="button" data-zone="${esc(z)}" aria-expanded="${st.zone === z}" aria-controls="zone-panel" title="What losing ${esc(z)} takes">${esc(z)} ${st.zone === z ? '▾' : '▸'}</button></th>`).join('');
    const table = $('matrix');
    const old = table.querySelector('colgroup');
    if (old) old.remove();
    table.insertAdjacentHTML('afterbegin', cols);
    table.style.minWidth = `${360 + zones.length * 135 + 520}px`;
    $('matrix-head').innerHTML = `<tr><th scope="col" ${wl.attr}>${wl.html}</th>${zoneTh}` +
      `<th scope="col" ${loss.attr}>${loss.html}</th><th scope="col" ${fnd.attr}>${fnd.html}</th></tr>`;
  }

  function compare(a, b) {
    let c = 0;
    if (st.sort === 'risk') {
      c = LEVELS[a.loss.level].rank - LEVELS[b.loss.level].rank ||
        (a.loss.share ?? 1) - (b.loss.share ?? 1) || b.sev - a.sev;
    } else if (st.sort === 'finding') {
      c = b.sev - a.sev || (a.worst ? a.worst.rule : '~').localeCompare(b.worst ? b.worst.rule : '~') ||
        LEVELS[a.loss.level].rank - LEVELS[b.loss.level].rank;
    }
    if (c) return c * st.dir;
    return (a.ns.localeCompare(b.ns) || a.e.name.localeCompare(b.e.name) || a.e.kind.localeCompare(b.e.kind)) * (st.sort === 'name' ? st.dir : 1);
  }

  function matches(r) {
    if (st.ns && r.ns !== st.ns) return false;
    if (st.rule && !r.rules.has(st.rule)) return false;
    if (st.sev) {
      if (st.sev === 'none' ? r.worst : (!r.worst || r.worst.severity !== st.sev)) return false;
    }
    if (st.text && !r.text.includes(st.text)) return false;
    return true;
  }

  function update() {
    const activeRow = typeof view[st.active] === 'number' && view[st.active] >= 0 ? view[st.active] : null;
    const shown = [];
    for (let k = 0; k < rows.length; k++) if (matches(rows[k])) shown.push(k);
    shown.sort((x, y) => compare(rows[x], rows[y]));
    view = [];
    groups = [];
    if (st.group) {
      const byNs = new Map();
      for (const k of shown) {
        const ns = rows[k].ns;
        if (!byNs.has(ns)) byNs.set(ns, []);
        byNs.get(ns).push(k);
      }
      for (const [ns, ks] of byNs) {
        const g = groups.length;
        groups.push({ ns, count: ks.length, all: ks.filter((k) => rows[k].loss.level === 'all').length });
        view.push(~g);
        for (const k of ks) view.push(k);
      }
    } else {
      view = shown;
    }
    const nss = new Set(shown.map((k) => rows[k].ns)).size;
    $('count').textContent = `Showing ${plural(shown.length, 'workload')} of ${rows.length.toLocaleString('en')} in ${plural(nss, 'namespace')}` +
      `, sorted by ${st.sort === 'risk' ? 'zone loss (risk)' : st.sort === 'name' ? 'name' : 'worst finding'}${st.dir < 0 ? ' (reversed)' : ''}.`;
    // As tall as its rows, up to 62% of the window (virtual scrolling below that).
    const vp = $('viewport');
    const want = ($('matrix-head').offsetHeight || 36) + Math.max(view.length, 1) * ROW + 2;
    vp.style.height = `${Math.max(120, Math.min(want, Math.round(window.innerHeight * 0.62)))}px`;
    const at = activeRow === null ? -1 : view.indexOf(activeRow);
    st.active = at >= 0 ? at : firstRowFrom(0, 1);
    render();
  }

  function firstRowFrom(v, step) {
    for (let k = v; k >= 0 && k < view.length; k += step) if (view[k] >= 0) return k;
    return -1;
  }

  function cell(r, z) {
    const a = r.az ? r.az[z] : undefined;
    const p = r.pz ? r.pz[z] : undefined;
    const worst = r.loss.zone === z && r.loss.lost > 0 ? ' <span class="mark" title="the zone whose loss takes the most">◆</span>' : '';
    if (a !== undefined) {
      const diff = p !== undefined && p !== a ? ` <span class="pred">(pred ${p})</span>` : '';
      return `<td class="n${a ? '' : ' zero'}">${a}${diff}${worst}</td>`;
    }
    if (p !== undefined) return `<td class="n"><span class="pred" title="${p} predicted">≈${p}</span>${worst}</td>`;
    return '<td class="n zero" title="not known">–</td>';
  }

  function lossText(l) {
    const lv = LEVELS[l.level];
    if (l.level === 'unknown' || l.level === 'down') return `<span class="lvl lvl-${l.level}">${lv.shape} ${lv.text}</span>`;
    if (l.level === 'open') {
      return `<span class="lvl lvl-open" title="nothing spreads its replicas over zones: one zone may hold them all">${lv.shape} ${lv.text}</span>: may lose all ${l.total}`;
    }
    const pred = l.basis === 'predicted';
    const ge = l.floor ? '≥' : '';
    const sentence = `losing ${l.zone} leaves ${ge}${l.left} of ${l.total}${pred ? ' (predicted)' : ''}`;
    return `<span class="lvl lvl-${l.level}" title="${esc(sentence)}">${lv.shape} ${lv.text}</span>: ${ge}${l.left} of ${l.total} left${pred ? ' (pred.)' : ''}`;
  }

  function findingText(w) {
    if (!w) return '<span class="note">no finding</span>';
    return `<span class="sev-${esc(w.severity)}">${SEV_SHAPE[w.severity] || ''} ${esc(w.severity)}</span> <span class="rule">${esc(w.rule)}</span> ${esc(w.message)}`;
  }

  function rowHtml(v) {
    const k = view[v];
    const ncols = zones.length + 3;
    if (k < 0) {
      const g = groups[~k];
      return `<tr class="group" aria-rowindex="${v + 2}"><th colspan="${ncols}" scope="rowgroup">namespace ${esc(g.ns || '(none)')} · ${plural(g.count, 'workload')}${g.all ? ` · ✖ ${g.all} lose all to one zone` : ''}</th></tr>`;
    }
    const r = rows[k];
    const name = st.group ? esc(r.e.name) : `${esc(r.ns ? r.ns + '/' : '')}${esc(r.e.name)}`;
    return `<tr class="row" data-v="${v}" tabindex="${v === st.active ? 0 : -1}" aria-rowindex="${v + 2}" aria-haspopup="dialog">` +
      `<th scope="row" title="${esc(r.e.kind + ' ' + (r.ns ? r.ns + '/' : '') + r.e.name)}"><span class="kind">${esc(r.e.kind)}</span>${name}</th>` +
      zones.map((z) => cell(r, z)).join('') +
      `<td>${lossText(r.loss)}</td><td>${findingText(r.worst)}</td></tr>`;
  }

  function render() {
    const vp = $('viewport');
    const head = $('matrix-head').offsetHeight || 36;
    const top = Math.max(0, vp.scrollTop - head);
    let from = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    let to = Math.min(view.length, Math.ceil((top + vp.clientHeight) / ROW) + OVERSCAN);
    const ncols = zones.length + 3;
    let html = `<tr class="spacer" aria-hidden="true" style="height:${from * ROW}px"><td colspan="${ncols}"></td></tr>`;
    if (st.active < from || st.active >= to) {
      const k = firstRowFrom(Math.min(view.length - 1, from + OVERSCAN), 1);
      if (k >= 0 && !bodyHasFocus()) st.active = k;
    }
    for (let v = from; v < to; v++) html += rowHtml(v);
    if (!view.length) html += `<tr><td colspan="${ncols}" class="note">No workload matches the filters.</td></tr>`;
    html += `<tr class="spacer" aria-hidden="true" style="height:${(view.length - to) * ROW}px"><td colspan="${ncols}"></td></tr>`;
    const hadFocus = bodyHasFocus();
    $('matrix-body').innerHTML = html;
    $('matrix').setAttribute('aria-rowcount', String(view.length + 1));
    if (hadFocus) focusActive();
    if (firstPaint) {
      firstPaint = false;
      performance.mark('posture-rendered');
      requestAnimationFrame(() => requestAnimationFrame(() => {
        performance.mark('posture-painted');
        document.body.dataset.ready = 'true';
      }));
    }
  }

  function bodyHasFocus() {
    return $('matrix-body').contains(document.activeElement);
  }

  function focusActive() {
    const tr = $('matrix-body').querySelector(`tr[data-v="${st.active}"]`);
    if (tr) tr.focus({ preventScroll: true });
  }

  // Moves the active row, scrolling it into view and keeping the focus on it.
  function moveTo(v) {
    if (v < 0 || v >= view.length) return;
    if (view[v] < 0) {
      const k = firstRowFrom(v, v > st.active ? 1 : -1);
      v = k >= 0 ? k : firstRowFrom(v, 1);
      if (v < 0) return;
    }
    st.active = v;
    const vp = $('viewport');
    const head = $('matrix-head').offsetHeight || 36;
    const y = head + v * ROW;
    if (y < vp.scrollTop + head) vp.scrollTop = y - head;
    else if (y + ROW > vp.scrollTop + vp.clientHeight) vp.scrollTop = y + ROW - vp.clientHeight;
    render();
    focusActive();
  }

  // === the zone panel ===

  function wlButton(r, extra) {
    return `<li><button type="button" class="linkish" data-row="${r.i}">${esc(r.e.kind)} ${esc(r.ns ? r.ns + '/' : '')}${esc(r.e.name)}</button>${extra ? ' ' + esc(extra) : ''}</li>`;
  }

  function list(items, render, empty) {
    if (!items.length) return `<p class="note">${esc(empty)}</p>`;
    const more = items.length > LIST_MAX ? `<li class="note">… and ${(items.length - LIST_MAX).toLocaleString('en')} more</li>` : '';
    return `<ul>${items.slice(0, LIST_MAX).map(render).join('')}${more}</ul>`;
  }

  function zonePanel(z, focus) {
    st.zone = z;
    const panel = $('zone-panel');
    const t = doc.topology || {};
    const nodes = t.zones && z in t.zones ? plural(t.zones[z], 'node') : 'no node known';
    const now = [], nowBudget = [], pred = [], predBudget = [];
    let readyHere = 0, withPods = 0, open = 0;
    for (const r of rows) {
      const a = r.e.actual, p = r.e.placement;
      const budget = allowed(r.e);
      if (a && a.zones) {
        const n = a.zones[z] || 0;
        readyHere += n;
        if (n) withPods++;
        const ab = a.budget && a.budget.zones ? a.budget.zones[z] : null;
        if (n && n === a.ready) now.push(r);
        else if (ab && ab.belowBudget) nowBudget.push([r, `${n} ready here, ${ab.left} left elsewhere, ${a.budget.name} requires ${a.budget.desiredHealthy}`]);
        else if (!a.budget && n && budget !== null && n > budget) nowBudget.push([r, `${n} ready here, the budget lets ${budget} go`]);
      }
      if (p && p.zones) {
        const n = p.zones[z] || 0, total = sum(p.zones);
        if (r.loss.level === 'open' || (p.worstZoneLoss && p.worstZoneLoss.zone === null)) open++;
        else if (n && n === total) pred.push(r);
        else if (n && budget !== null && n > budget) predBudget.push([r, `${n} predicted here, the budget lets ${budget} go`]);
      }
    }
    const hasActual = rows.some((r) => r.e.actual), hasPred = rows.some((r) => r.e.placement);
    const summaryNow = doc.zoneLoss && doc.zoneLoss[z];
    if (summaryNow && Array.isArray(summaryNow.loseAll)) {
      // What runs now, as the report summed it (the table's first lines): its lists win.
      const byKey = new Map(rows.map((r) => [`${r.e.kind}/${r.ns}/${r.e.name}`, r]));
      const find = (w) => byKey.get(`${w.kind}/${w.namespace || ''}/${w.name}`);
      now.length = 0;
      for (const w of summaryNow.loseAll) { const r = find(w); if (r) now.push(r); }
      if (Array.isArray(summaryNow.belowBudget)) {
        nowBudget.length = 0;
        for (const w of summaryNow.belowBudget) {
          const r = find(w);
          if (r) nowBudget.push([r, `${w.left} left, ${w.budget} requires ${w.desiredHealthy}`]);
        }
      }
    }
    let html = `<div class="panel-head"><h2 id="zone-panel-h" tabindex="-1">If zone ${esc(z)} is lost</h2>` +
      `<button type="button" id="zone-close">Close zone panel</button></div><p>${esc(z)}: ${esc(nodes)}.</p><div class="cols">`;
    if (hasActual) {
      const s = summaryNow || { workloads: withPods, readyPods: readyHere };
      html += `<div><h3>What runs now</h3><p>${plural(s.readyPods, 'ready pod')} of ${plural(s.workloads, 'workload')} run here.</p>` +
        `<h4>✖ At zero: ${now.length.toLocaleString('en')} lose every ready pod</h4>` + list(now, (r) => wlButton(r, `(${r.e.actual.ready} ready, all here)`), 'None.') +
        `<h4>▲ Below their disruption budget: ${nowBudget.length.toLocaleString('en')}</h4>` + list(nowBudget, ([r, x]) => wlButton(r, x),
          rows.some((r) => Array.isArray(r.e.disruptionBudgets)) ? 'None.' : 'No disruption budgets in this report.') + '</div>';
    }
    if (hasPred) {
      html += `<div><h3>As predicted</h3>` +
        `<h4>✖ At zero: ${pred.length.toLocaleString('en')} would lose every replica</h4>` + list(pred, (r) => wlButton(r, `(${plural(sum(r.e.placement.zones), "replica")}, all here)`), 'None.') +
        `<h4>▲ Below their disruption budget: ${predBudget.length.toLocaleString('en')}</h4>` + list(predBudget, ([r, x]) => wlButton(r, x),
          rows.some((r) => Array.isArray(r.e.disruptionBudgets)) ? 'None.' : 'No disruption budgets in this report.') +
        (open ? `<p>◇ ${plural(open, 'workload')} unconstrained: nothing spreads their replicas over zones, so this zone may hold them all.</p>` : '') + '</div>';
    }
    if (!hasActual && !hasPred) {
      html += '<p class="note">This report has no placement: no running pods were read (<code>audit --cluster</code> or <code>serve --ui</code> in a cluster reads them) and no predicted placement is in it.</p>';
    }
    html += '</div>';
    panel.innerHTML = html;
    panel.hidden = false;
    zoneButtons();
    if (focus) $('zone-panel-h').focus();
  }

  // The zone headers say which zone's panel is open: aria-expanded, and ▾ against ▸.
  function zoneButtons() {
    for (const b of $('matrix-head').querySelectorAll('button[data-zone]')) {
      const open = b.dataset.zone === st.zone;
      b.setAttribute('aria-expanded', String(open));
      b.textContent = `${b.dataset.zone} ${open ? '▾' : '▸'}`;
    }
  }

  function closeZonePanel() {
    const z = st.zone;
    st.zone = null;
    $('zone-panel').hidden = true;
    zoneButtons();
    const back = document.querySelector(`#matrix-head button[data-zone="${CSS.escape(z || '')}"]`);
    if (back) back.focus();
  }

  // === a workload's detail ===

  function placementTable(e) {
    const a = e.actual, p = e.placement;
    if (!a && !p) return '<p class="note">No placement in this report: neither running pods nor a prediction.</p>';
    const zs = new Set([...Object.keys((a && a.zones) || {}), ...Object.keys((p && p.zones) || {})]);
    let h = `<table class="small"><caption class="visually-hidden">Placement per zone</caption><thead><tr><th scope="col">Zone</th>` +
      `<th scope="col">Predicted</th><th scope="col">Ready now</th></tr></thead><tbody>`;
    for (const z of [...zs].sort()) {
      h += `<tr><th scope="row">${esc(z)}</th><td class="num">${p && p.zones ? (p.zones[z] ?? 0) : '–'}</td><td class="num">${a && a.zones ? (a.zones[z] ?? 0) : '–'}</td></tr>`;
    }
    h += '</tbody></table><ul>';
    if (p) {
      const w = p.worstZoneLoss;
      const basis = { guaranteed: 'guaranteed by hard constraints', expected: 'expected (soft constraints: the scheduler may place otherwise)',
        bounded: 'bounded (the largest zone holds at most this many, so what is left is a floor)', unconstrained: 'unconstrained: nothing spreads the replicas over zones' };
      const loss = !w ? 'no zone-loss figure'
        : w.zone === null || w.zone === undefined ? `losing one zone may take all ${w.lost + w.left}`
          : `losing ${esc(w.zone)} takes ${w.lost} and leaves ${p.basis === 'bounded' ? 'at least ' : ''}${w.left} of ${w.lost + w.left}`;
      h += `<li>Predicted${typeof p.replicas === 'number' ? ` for ${plural(p.replicas, 'replica')}` : ''}${typeof p.eligibleZones === 'number' ? ` over ${plural(p.eligibleZones, 'eligible zone')}` : ''}: ${loss}; ` +
        `${esc(basis[p.basis] || (p.guaranteed ? basis.guaranteed : 'not guaranteed'))}${p.pending ? `; ${p.pending} left Pending by the constraints` : ''}.</li>`;
    } else {
      h += '<li>Predicted: not in this report.</li>';
    }
    if (a) {
      const w = a.worstZoneLoss;
      h += `<li>Now: ${plural(a.ready, 'ready pod')}${a.unzoned ? `, ${a.unzoned} on unzoned nodes` : ''}${a.notReady ? `, ${a.notReady} not ready` : ''}` +
        `${a.unscheduled ? `, ${a.unscheduled} unscheduled` : ''}; ${w ? `losing ${esc(w.zone)} takes ${w.lost} and leaves ${w.left} of ${a.ready}` : 'nothing ready to lose'}.</li>`;
      if (a.budget) {
        const zs = Object.entries(a.budget.zones || {}).map(([z, v]) => `${esc(z)}: ${v.evictable} evictable, ${v.left} left${v.belowBudget ? ' (▲ below budget)' : ''}`);
        h += `<li>Its PodDisruptionBudget ${esc(a.budget.name)} requires ${esc(a.budget.desiredHealthy)} ready (${esc(a.budget.disruptionsAllowed)} evictions allowed now)${zs.length ? '; a drain of ' + zs.join('; ') : ''}.</li>`;
      }
    } else {
      h += '<li>Now: running pods not read.</li>';
    }
    return h + '</ul>';
  }

  function openDetail(k) {
    const r = rows[k];
    const e = r.e;
    const o = e.outcome || {};
    let h = `<h2 id="detail-h">${esc(e.kind)} ${esc(e.namespace ? e.namespace + '/' : '')}${esc(e.name)}</h2>`;
    h += `<dl class="facts"><dt>Source</dt><dd>${esc(e.source)}</dd><dt>Mode</dt><dd>${esc(e.mode)}</dd>` +
      `<dt>Webhook</dt><dd>${o.allowed === false ? `<span class="sev-deny">${SEV_SHAPE.deny} would deny</span>` : 'would allow'}${o.patched ? ', would patch' : ''}</dd>` +
      `<dt>Zone loss</dt><dd>${lossText(r.loss)}</dd></dl>`;
    h += `<h3>Findings (${(e.findings || []).length})</h3>`;
    h += e.findings && e.findings.length
      ? `<ul class="findings">${e.findings.map((f) => `<li><span class="sev-${esc(f.severity)}">${SEV_SHAPE[f.severity] || ''} ${esc(f.severity)}</span> <span class="rule">${esc(f.rule)}</span> ${esc(f.message)}${f.waivedBy ? ` <span class="note">(waived by ${esc(f.waivedBy)})</span>` : ''}</li>`).join('')}</ul>`
      : '<p class="note">No finding.</p>';
    h += '<h3>Placement: predicted and actual</h3>' + placementTable(e);
    h += '<h3>Disruption budget and autoscaler</h3><ul>';
    if (Array.isArray(e.disruptionBudgets)) {
      h += e.disruptionBudgets.length ? e.disruptionBudgets.map((b) => `<li>PodDisruptionBudget ${esc(b.name)}: ` +
        `${'minAvailable' in b ? 'minAvailable ' + esc(b.minAvailable) : 'maxUnavailable ' + esc(b.maxUnavailable)}, lets ${esc(b.allowedUnavailable)} go at once</li>`).join('')
        : '<li>No PodDisruptionBudget selects its pods.</li>';
    } else {
      h += '<li>Disruption budgets: not in this report.</li>';
    }
    if ('autoscaler' in e) {
      h += e.autoscaler ? `<li>HorizontalPodAutoscaler ${esc(e.autoscaler.name)}: minReplicas ${esc(e.autoscaler.minReplicas)}, maxReplicas ${esc(e.autoscaler.maxReplicas)} (minReplicas counts as its replicas)</li>`
        : '<li>No HorizontalPodAutoscaler targets it.</li>';
    } else {
      h += '<li>Autoscaler: not in this report.</li>';
    }
    h += '</ul>';
    h += `<h3>Patch the webhook would apply${e.injected && e.injected.length ? ': ' + esc(e.injected.join(', ')) : ''}</h3>`;
    h += e.patch && e.patch.length ? `<pre id="detail-patch">${esc(JSON.stringify(e.patch, null, 2))}</pre>` : '<p class="note">No patch.</p>';
    if (o.warnings && o.warnings.length) {
      h += `<h3>Warnings the webhook would send</h3><ul>${o.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>`;
    }
    $('detail-body').innerHTML = h;
    const d = $('detail');
    if (!d.open) {
      opener = document.activeElement;
      d.showModal();
    }
    $('detail-close').focus();
  }

  // === events ===

  function onSort(key) {
    if (st.sort === key) st.dir = -st.dir;
    else { st.sort = key; st.dir = 1; }
    matrixHead();
    update();
    const b = $('matrix-head').querySelector(`button[data-sort="${key}"]`);
    if (b) b.focus();
  }

  function wire() {
    $('matrix-head').addEventListener('click', (ev) => {
      const b = ev.target.closest('button');
      if (!b) return;
      if (b.dataset.sort) onSort(b.dataset.sort);
      else if (b.dataset.zone) {
        if (st.zone === b.dataset.zone) closeZonePanel();
        else zonePanel(b.dataset.zone, true);
      }
    });
    $('zones-table').addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-zone]');
      if (b) zonePanel(b.dataset.zone, true);
    });
    $('zone-panel').addEventListener('click', (ev) => {
      const b = ev.target.closest('button');
      if (!b) return;
      if (b.id === 'zone-close') closeZonePanel();
      else if (b.dataset.row) openDetail(rows.findIndex((r) => r.i === Number(b.dataset.row)));
    });
    $('zone-panel').addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') { ev.preventDefault(); closeZonePanel(); }
    });
    const body = $('matrix-body');
    body.addEventListener('click', (ev) => {
      const tr = ev.target.closest('tr.row');
      if (!tr) return;
      st.active = Number(tr.dataset.v);
      render();
      focusActive();
      openDetail(view[st.active]);
    });
    body.addEventListener('keydown', (ev) => {
      const tr = ev.target.closest('tr.row');
      if (!tr) return;
      const v = Number(tr.dataset.v);
      const page = Math.max(1, Math.floor($('viewport').clientHeight / ROW) - 1);
      const moves = { ArrowDown: v + 1, ArrowUp: v - 1, PageDown: Math.min(view.length - 1, v + page), PageUp: Math.max(0, v - page), Home: 0, End: view.length - 1 };
      if (ev.key in moves) {
        ev.preventDefault();
        st.active = v;
        moveTo(moves[ev.key]);
      } else if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        st.active = v;
        openDetail(view[v]);
      }
    });
    let pending = false;
    $('viewport').addEventListener('scroll', () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; render(); });
    }, { passive: true });
    window.addEventListener('resize', () => update());
    const refilter = () => {
      st.ns = $('f-ns').value;
      st.rule = $('f-rule').value;
      st.sev = $('f-sev').value;
      st.text = $('f-text').value.trim().toLowerCase();
      st.group = $('f-group').checked;
      $('viewport').scrollTop = 0;
      update();
    };
    for (const id of ['f-ns', 'f-rule', 'f-sev', 'f-group']) $(id).addEventListener('change', refilter);
    let timer = 0;
    $('f-text').addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(refilter, 120); });
    $('filters').addEventListener('submit', (ev) => { ev.preventDefault(); refilter(); });
    $('detail').addEventListener('close', () => {
      const back = opener;
      opener = null;
      if (back && back.isConnected && !back.closest('#matrix-body')) {
        back.focus();
      } else if (typeof view[st.active] === 'number' && view[st.active] >= 0) {
        render();
        focusActive();
      }
    });
  }

  wire();
  load();
})();
