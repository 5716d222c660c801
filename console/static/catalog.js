// Catalog screens: the draft's entries with search and problems, the form
// for one entry, the diff against live with publishing, and the versions
// with rollback. What a key may do decides what is drawn: a viewer gets
// read-only forms and no publish or rollback buttons.

import { h, mount, field, table, fmtTime, json, uid } from './dom.js';
import { api, session, guard, showInfo, flash, clearAlert, ApiError } from './api.js';

const SECTIONS = [
  ['currencies', 'Currencies', 'currency'],
  ['items', 'Items', 'item'],
  ['bundles', 'Bundles', 'bundle'],
  ['store_products', 'Store products', 'store product'],
];

const sectionName = (sec) => SECTIONS.find((s) => s[0] === sec)[2];

export function entityID(sec, e) {
  return sec === 'store_products' ? `${e.store}:${e.product_id}` : e.id;
}

const entityHref = (sec, id) => `#/catalog/${sec}/${encodeURIComponent(id)}`;

function prices(e) {
  return (e.prices || []).map((p) => `${p.amount} ${p.currency}`).join(', ');
}

// problemEntity finds which entry a validation path like
// "items[2].prices[0].amount" is about, and the path inside it.
function problemEntity(doc, path) {
  const m = /^(currencies|items|bundles|store_products)\[(\d+)\](?:\.(.*))?$/.exec(path || '');
  if (!m) return null;
  const e = (doc[m[1]] || [])[Number(m[2])];
  if (!e) return null;
  return { sec: m[1], id: entityID(m[1], e), index: Number(m[2]), rest: m[3] || '' };
}

export async function catalogScreen(main) {
  const [{ data: doc }, { data: status }] = await Promise.all([
    api('GET', '/admin/v1/catalog/draft'),
    api('POST', '/admin/v1/catalog/draft/validate'),
  ]);
  const search = h('input', { type: 'search', name: 'q', placeholder: 'id, name, category or tag', size: 30 });
  const only = h('select', { name: 'section' }, h('option', { value: '' }, 'All sections'),
    SECTIONS.map(([sec, label]) => h('option', { value: sec }, label)));
  const groups = [];
  const sectionsEl = h('div', {}, SECTIONS.map(([sec, label]) => {
    const list = doc[sec] || [];
    const rows = list.map((e) => {
      const id = entityID(sec, e);
      const text = [id, e.name, e.category, ...(e.tags || []), ...Object.values(e.localized || {}).map((t) => t.name)]
        .filter(Boolean).join(' ').toLowerCase();
      return h('tr', { 'data-search': text },
        h('td', {}, h('a', { href: entityHref(sec, id) }, id)),
        h('td', {}, sec === 'store_products' ? grantsText(e.grants) : (e.name || '')),
        h('td', {}, e.category || e.kind || ''),
        h('td', {}, (e.tags || []).join(', ')),
        h('td', {}, prices(e)));
    });
    const g = h('section', { class: 'card', 'data-section': sec },
      h('h2', {}, `${label} `, h('span', { class: 'muted' }, `(${list.length})`)),
      list.length ? table(['ID', sec === 'store_products' ? 'Grants' : 'Name', 'Category / kind', 'Tags', 'Prices'], rows) : h('p', { class: 'muted' }, 'None.'),
      session.can('editor') ? h('p', {}, h('a', { href: `#/new/${sec}`, class: 'button' }, `New ${sectionName(sec)}`)) : null);
    groups.push(g);
    return g;
  }));
  const filter = () => {
    const q = search.value.trim().toLowerCase();
    for (const g of groups) {
      g.hidden = only.value !== '' && g.dataset.section !== only.value;
      for (const tr of g.querySelectorAll('tbody tr')) tr.hidden = q !== '' && !tr.dataset.search.includes(q);
    }
  };
  search.addEventListener('input', filter);
  only.addEventListener('change', filter);

  const problems = status.errors.length
    ? h('section', { class: 'card problems', id: 'draft-problems' },
      h('h2', {}, `The draft has ${status.errors.length} problem${status.errors.length === 1 ? '' : 's'}`),
      h('p', { class: 'muted' }, 'It cannot be published until they are fixed.'),
      h('ul', {}, status.errors.map((p) => {
        const at = problemEntity(doc, p.path);
        return h('li', {}, at ? h('a', { href: entityHref(at.sec, at.id) }, h('code', {}, p.path)) : h('code', {}, p.path || '(document)'), ': ', p.message);
      })))
    : h('section', { class: 'card ok', id: 'draft-problems' }, h('p', {}, 'The draft is valid.'));

  mount(main,
    h('h1', {}, 'Catalog draft'),
    h('p', { class: 'muted' }, `Revision ${status.revision}`, status.updated_by ? `, last edited by ${status.updated_by} at ${fmtTime(status.updated_at)}` : '', '.'),
    h('div', { class: 'toolbar' },
      field('Search', search), field('Show', only),
      h('a', { href: '#/diff', class: 'button' }, session.can('publisher') ? 'Review changes and publish' : 'Review changes'),
      h('a', { href: '#/versions', class: 'button' }, 'Versions')),
    problems,
    sectionsEl,
    await previewCard(doc));
}

function grantsText(g) {
  if (!g) return '';
  const parts = [];
  for (const [id, n] of Object.entries(g.currencies || {})) parts.push(`${n} ${id}`);
  for (const [id, n] of Object.entries(g.items || {})) parts.push(`${n} × ${id}`);
  return parts.join(', ');
}

// previewCard shows the live catalog as a player's client in a locale sees
// it (GET /v1/catalog?locale=...), the strings falling back to the default.
async function previewCard(draft) {
  const body = h('div', {});
  const { data: whole } = await api('GET', '/v1/catalog', { anonymous: true, quiet: [503] }).catch((e) => {
    if (e instanceof ApiError && e.status === 503) return { data: null };
    throw e;
  });
  if (!whole) {
    return h('section', { class: 'card' }, h('h2', {}, 'Live preview'), h('p', { class: 'muted' }, 'No catalog has been published yet.'));
  }
  // The locales come from the draft: the browser's own Accept-Language
  // makes GET /v1/catalog answer in one locale, without the others.
  const locales = new Set();
  for (const sec of ['currencies', 'items', 'bundles']) {
    for (const e of draft[sec] || []) Object.keys(e.localized || {}).forEach((l) => locales.add(l));
  }
  const def = draft.default_locale;
  const select = h('select', { name: 'locale' },
    h('option', { value: '' }, def ? `${def} (default)` : 'Default strings'),
    [...locales].sort().map((l) => h('option', { value: l }, l)));
  const show = () => guard(async () => {
    // Always name the locale, so what is shown does not depend on this
    // browser's languages.
    const q = `?locale=${encodeURIComponent(select.value || def || 'und')}`;
    const { data } = await api('GET', `/v1/catalog${q}`, { anonymous: true });
    const rows = [];
    for (const sec of ['currencies', 'items', 'bundles']) {
      for (const e of data.catalog[sec] || []) {
        rows.push(h('tr', { 'data-id': e.id }, h('td', {}, sectionName(sec)), h('td', {}, e.id), h('td', { class: 'preview-name' }, e.name),
          h('td', {}, e.description || ''), h('td', {}, prices(e))));
      }
    }
    mount(body, h('p', { class: 'muted' }, `Version ${data.version}`, data.locale ? `, strings in ${data.locale}` : '', '.'),
      table(['Kind', 'ID', 'Name', 'Description', 'Price'], rows, { id: 'preview-table' }));
  });
  select.addEventListener('change', show);
  await show();
  return h('section', { class: 'card', id: 'preview' },
    h('h2', {}, 'Live preview'),
    h('p', { class: 'muted' }, 'The published catalog as the game client receives it in a locale.'),
    field('Locale', select), body);
}

// ---- the entry form ----

// parents lists a problem path and the paths enclosing it, innermost
// first: prices[0].amount, prices[0], prices.
function parents(path) {
  const out = [];
  let p = path;
  while (p) {
    out.push(p);
    const q = p.replace(/(\.[^.[\]]+|\[[^\]]*\])$/, '');
    if (q === p) break;
    p = q;
  }
  return out;
}

function textInput(name, value, extra) {
  return h('input', { type: 'text', name, value: value ?? '', ...extra });
}

function checkbox(name, checked) {
  return h('input', { type: 'checkbox', name, checked: !!checked });
}

function intOrRaw(s) {
  const t = String(s).trim();
  if (t === '') return undefined;
  // Integers travel as numbers; anything else goes as typed, so the
  // server's message says what is wrong at the field.
  return /^-?\d+$/.test(t) ? Number(t) : t;
}

export async function entityScreen(main, sec, id) {
  const creating = id === null;
  const [{ data: doc }] = await Promise.all([api('GET', '/admin/v1/catalog/draft')]);
  let value = {};
  let etag = null;
  if (!creating) {
    const r = await api('GET', `/admin/v1/catalog/draft/${sec}/${encodeURIComponent(id)}`);
    value = r.data;
    etag = r.etag;
  }
  const editable = session.can('editor');
  const currencies = (doc.currencies || []).map((c) => c.id);
  const form = h('form', { class: 'card entity-form', novalidate: true });
  const status = h('div', { class: 'form-status', role: 'status', 'aria-live': 'polite' });
  const conflict = h('div', { class: 'conflict', role: 'alert', hidden: true });
  const build = () => buildFields(sec, value, creating, currencies);
  let fields = build();

  const submit = editable ? h('button', { type: 'submit', class: 'primary', name: 'save' }, creating ? `Create ${sectionName(sec)}` : 'Save to draft') : null;
  const del = editable && !creating ? h('button', { type: 'button', class: 'danger', name: 'delete', onclick: () => guard(remove) }, 'Delete from draft') : null;

  const render = () => {
    mount(form, fields.el, h('ul', { class: 'general-errors' }), h('div', { class: 'actions' }, submit, del));
    if (!editable) {
      // Read only, yet still readable and focusable; no buttons that
      // would only be refused.
      for (const c of form.querySelectorAll('input, textarea')) c.readOnly = true;
      for (const c of form.querySelectorAll('select')) c.disabled = true;
      for (const b of form.querySelectorAll('button')) b.hidden = true;
    }
  };

  const clearErrors = () => {
    for (const p of form.querySelectorAll('.field-error')) { p.hidden = true; p.textContent = ''; }
    for (const f of form.querySelectorAll('.field.invalid')) f.classList.remove('invalid');
    form.querySelector('.general-errors').replaceChildren();
  };

  // showErrors puts each problem at the field whose path it names, or the
  // closest enclosing one; the rest go in a list above the buttons.
  const showErrors = (problems) => {
    const left = [];
    for (const p of problems) {
      const target = parents(p.path || '').map((q) => q && form.querySelector(`.field[data-path="${CSS.escape(q)}"]`)).find(Boolean);
      if (target) {
        target.classList.add('invalid');
        const err = target.querySelector(':scope > .field-error');
        err.hidden = false;
        err.textContent = err.textContent ? `${err.textContent} ${p.message}` : p.message;
      } else {
        left.push(p);
      }
    }
    mount(form.querySelector('.general-errors'), left.map((p) => h('li', {}, p.path ? h('code', {}, p.path) : null, p.path ? ': ' : '', p.message)));
    const first = form.querySelector('.field.invalid input, .field.invalid select, .field.invalid textarea');
    if (first) first.focus();
  };

  const entityProblems = async (entID) => {
    const { data } = await api('POST', '/admin/v1/catalog/draft/validate');
    const { data: d } = await api('GET', '/admin/v1/catalog/draft');
    const mine = [];
    for (const p of data.errors) {
      const at = problemEntity(d, p.path);
      if (at && at.sec === sec && at.id === entID) mine.push({ path: at.rest, message: p.message });
    }
    return { mine, all: data.errors.length };
  };

  const save = async (ifMatch) => {
    clearErrors();
    conflict.hidden = true;
    let body;
    try {
      body = fields.collect();
    } catch (e) {
      if (e.problems) { showErrors(e.problems); return; }
      throw e;
    }
    const targetID = creating ? entityID(sec, body) : id;
    if (!targetID || targetID === ':') {
      showErrors([{ path: sec === 'store_products' ? 'product_id' : 'id', message: 'id is required' }]);
      return;
    }
    if (creating) {
      // Asking for the entity would log a 404 in the browser console; the
      // draft says as much.
      const { data: cur } = await api('GET', '/admin/v1/catalog/draft');
      const exists = (cur[sec] || []).some((x) => entityID(sec, x) === targetID);
      if (exists) {
        showErrors([{ path: sec === 'store_products' ? 'product_id' : 'id', message: `the draft already has a ${sectionName(sec)} ${targetID}` }]);
        return;
      }
    }
    const headers = {};
    if (ifMatch) headers['If-Match'] = ifMatch;
    let r;
    try {
      r = await api('PUT', `/admin/v1/catalog/draft/${sec}/${encodeURIComponent(targetID)}`, { body, headers, quiet: [412, 422] });
    } catch (e) {
      if (e instanceof ApiError && e.status === 412) {
        showConflict(e.problem.current_etag || null);
        return;
      }
      if (e instanceof ApiError && e.status === 422) {
        showErrors(e.problem.errors || [{ path: '', message: e.problem.detail }]);
        mount(status, h('p', { class: 'error' }, 'Not saved: fix the fields marked below.'));
        return;
      }
      throw e;
    }
    etag = r.etag;
    value = r.data;
    if (creating) {
      flash(`Created ${sectionName(sec)} ${targetID} in the draft.`);
      location.hash = entityHref(sec, targetID);
      return;
    }
    const { mine, all } = await entityProblems(targetID);
    showErrors(mine);
    mount(status, h('p', { class: mine.length ? 'error' : 'ok' },
      `Saved to the draft at ${new Date().toLocaleTimeString()}.`,
      mine.length ? ` This ${sectionName(sec)} has ${mine.length} problem${mine.length === 1 ? '' : 's'}, marked below.` : '',
      all > mine.length ? ` The draft has ${all - mine.length} other problem${all - mine.length === 1 ? '' : 's'}.` : '',
      ' ', h('a', { href: '#/diff' }, 'Review changes')));
  };

  const showConflict = (current) => {
    mount(conflict,
      h('p', {}, h('strong', {}, 'Someone else changed this since you opened it.'), ' Reload to see their version (your edits here are lost), or overwrite it with yours.'),
      h('div', { class: 'actions' },
        h('button', { type: 'button', name: 'reload', onclick: () => guard(reload) }, 'Reload'),
        h('button', { type: 'button', class: 'danger', name: 'overwrite', onclick: () => guard(() => withBusy(() => save(current))) }, 'Overwrite')));
    conflict.hidden = false;
    conflict.querySelector('button').focus();
  };

  const reload = async () => {
    const r = await api('GET', `/admin/v1/catalog/draft/${sec}/${encodeURIComponent(id)}`);
    value = r.data;
    etag = r.etag;
    fields = build();
    render();
    conflict.hidden = true;
    mount(status, h('p', {}, 'Reloaded the current version.'));
  };

  const remove = async () => {
    if (!window.confirm(`Delete ${sectionName(sec)} ${id} from the draft?`)) return;
    try {
      await api('DELETE', `/admin/v1/catalog/draft/${sec}/${encodeURIComponent(id)}`, { headers: etag ? { 'If-Match': etag } : {}, quiet: [412] });
    } catch (e) {
      if (e instanceof ApiError && e.status === 412) { showConflict(e.problem.current_etag || null); return; }
      throw e;
    }
    flash(`Deleted ${sectionName(sec)} ${id} from the draft.`);
    location.hash = '#/catalog';
  };

  // withBusy keeps the buttons disabled while a write is in flight, so a
  // second click cannot send a second write.
  const withBusy = async (fn) => {
    const buttons = [...form.querySelectorAll('button'), ...conflict.querySelectorAll('button')];
    buttons.forEach((b) => { b.disabled = true; });
    mount(status, h('p', { class: 'muted' }, 'Saving…'));
    try {
      await fn();
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      if (status.textContent === 'Saving…') status.replaceChildren();
    }
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearAlert();
    guard(() => withBusy(() => save(etag)));
  });
  render();
  mount(main,
    h('p', {}, h('a', { href: '#/catalog' }, '← Catalog')),
    h('h1', {}, creating ? `New ${sectionName(sec)}` : `${sectionName(sec)[0].toUpperCase()}${sectionName(sec).slice(1)} ${id}`),
    editable ? null : h('p', { class: 'muted' }, 'Read only: this key cannot edit the draft.'),
    conflict, status, form);
  if (!creating) {
    const { mine } = await entityProblems(id);
    showErrors(mine);
  }
}

// buildFields draws the form of one entry and returns collect(), which
// reads it back as the JSON the API takes. Each field's data-path is the
// path the server reports problems at, relative to the entry.
function buildFields(sec, v, creating, currencies) {
  const el = h('div', {});
  const readers = [];
  const add = (node, read) => { el.appendChild(node); if (read) readers.push(read); };
  const idField = (name, label) => {
    const input = textInput(name, v[name], { readonly: !creating || null, autocomplete: 'off', required: true });
    add(field(label, input, name), (out) => { const s = input.value.trim(); if (s) out[name] = s; });
  };
  if (sec === 'store_products') {
    const store = h('select', { name: 'store', disabled: !creating || null }, ['apple', 'google'].map((s) => h('option', { value: s, selected: v.store === s || null }, s)));
    add(field('Store', store, 'store'), (out) => { out.store = store.value; });
    idField('product_id', 'Product id');
    const grants = jsonArea('grants', v.grants || { currencies: {} }, 'Grants: {"currencies": {"gems": 100}, "items": {"sword": 1}}');
    add(grants.node, (out, bad) => grants.read(out, bad, true));
  } else {
    idField('id', 'ID');
    const name = textInput('name', v.name, { size: 40 });
    add(field('Name', name, 'name'), (out) => { out.name = name.value; });
    const desc = h('textarea', { name: 'description', rows: 3, cols: 60 });
    desc.value = v.description || '';
    add(field('Description', desc, 'description'), (out) => { if (desc.value !== '') out.description = desc.value; });
    if (sec === 'items') {
      const kind = h('select', { name: 'kind' }, ['durable', 'consumable'].map((k) => h('option', { value: k, selected: v.kind === k || null }, k)));
      add(field('Kind', kind, 'kind'), (out) => { out.kind = kind.value; });
    }
    if (sec !== 'currencies') {
      const p = pricesEditor(v.prices || [], currencies);
      add(p.node, (out) => { out.prices = p.read(); });
    }
    if (sec === 'items') {
      const max = textInput('max_per_player', v.max_per_player, { inputmode: 'numeric', size: 10 });
      add(field('Max per player (consumables; empty for no cap)', max, 'max_per_player'), (out) => { const n = intOrRaw(max.value); if (n !== undefined) out.max_per_player = n; });
      const own = checkbox('player_consumable', v.player_consumable);
      add(field('Players may consume it themselves (consumables)', own, 'player_consumable'), (out) => { if (own.checked) out.player_consumable = true; });
      // A save sends the whole entry: a field the form did not show would
      // be dropped, and a creator-made item would stop paying its creator.
      const creator = textInput('creator_id', v.creator_id, { size: 24, autocomplete: 'off', spellcheck: 'false' });
      add(field('Creator (for a creator-made item; empty for none)', creator, 'creator_id'), (out) => { if (creator.value.trim()) out.creator_id = creator.value.trim(); });
      const share = textInput('creator_share_ppm', v.creator_share_ppm, { inputmode: 'numeric', size: 10 });
      add(field('Creator\'s share of each sale, in millionths (300000 is 30%)', share, 'creator_share_ppm'), (out) => { const n = intOrRaw(share.value); if (n !== undefined) out.creator_share_ppm = n; });
    }
    if (sec === 'currencies') {
      const tip = checkbox('tippable', v.tippable);
      add(field('Tippable (players may tip creators in it)', tip, 'tippable'), (out) => { if (tip.checked) out.tippable = true; });
    }
    if (sec === 'bundles') {
      const contents = jsonArea('contents', v.contents || { items: {}, currencies: {} }, 'Contents: {"items": {"sword": 1}, "currencies": {"gold": 1000}}');
      add(contents.node, (out, bad) => contents.read(out, bad, true));
    }
    if (sec !== 'currencies') {
      for (const [k, label] of [['available_from', 'Available from (RFC 3339, inclusive)'], ['available_until', 'Available until (exclusive)']]) {
        const t = textInput(k, v[k], { placeholder: '2026-12-01T00:00:00Z', size: 24 });
        add(field(label, t, k), (out) => { if (t.value.trim()) out[k] = t.value.trim(); });
      }
    }
    const cat = textInput('category', v.category, { size: 24 });
    add(field('Category', cat, 'category'), (out) => { if (cat.value !== '') out.category = cat.value; });
    const tags = textInput('tags', (v.tags || []).join(', '), { size: 40, placeholder: 'sale, new' });
    add(field('Tags (comma separated)', tags, 'tags'), (out) => {
      const list = tags.value.split(',').map((s) => s.trim()).filter(Boolean);
      if (list.length) out.tags = list;
    });
    const img = textInput('image_url', v.image_url, { type: 'url', size: 60, placeholder: 'https://cdn.example.com/sword.png' });
    add(field('Image URL', img, 'image_url'), (out) => { if (img.value.trim()) out.image_url = img.value.trim(); });
    const loc = localizedEditor(v.localized || {});
    add(loc.node, (out) => { const m = loc.read(); if (Object.keys(m).length) out.localized = m; });
    const meta = jsonArea('metadata', v.metadata, 'Metadata: a JSON object for the game (at most 4 KiB)');
    add(meta.node, (out, bad) => meta.read(out, bad, false));
  }
  return {
    el,
    collect() {
      const out = {};
      const bad = [];
      for (const r of readers) r(out, bad);
      if (bad.length) { const e = new Error('invalid input'); e.problems = bad; throw e; }
      return out;
    },
  };
}

function jsonArea(name, value, label) {
  const ta = h('textarea', { name, rows: 4, cols: 60, spellcheck: 'false', class: 'code' });
  ta.value = value === undefined || value === null ? '' : JSON.stringify(value, null, 2);
  return {
    node: field(label, ta, name),
    read(out, bad, required) {
      const s = ta.value.trim();
      if (s === '') { if (required) out[name] = {}; return; }
      try {
        const v = JSON.parse(s);
        if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
        out[name] = v;
      } catch {
        bad.push({ path: name, message: `${name} must be a JSON object, like {"key": "value"}` });
      }
    },
  };
}

function pricesEditor(list, currencies) {
  const rows = h('div', { class: 'rows' });
  const wrap = h('fieldset', { class: 'field', 'data-path': 'prices' }, h('legend', {}, 'Prices'), rows,
    h('p', { class: 'field-error', hidden: true }));
  // Rows are numbered as they are sent, so a problem at prices[1] lands on
  // the second row even after one above it was removed.
  const renumber = () => {
    [...rows.children].forEach((row, i) => {
      row.querySelector('select').closest('.field').dataset.path = `prices[${i}].currency`;
      row.querySelector('input').closest('.field').dataset.path = `prices[${i}].amount`;
      row.querySelector('input').name = `prices[${i}].amount`;
      row.querySelector('select').name = `prices[${i}].currency`;
    });
  };
  const addRow = (p) => {
    const cur = h('select', {}, currencies.map((c) => h('option', { value: c, selected: p.currency === c || null }, c)));
    if (p.currency && !currencies.includes(p.currency)) cur.appendChild(h('option', { value: p.currency, selected: true }, p.currency));
    const amt = textInput('amount', p.amount, { inputmode: 'numeric', size: 14 });
    const row = h('div', { class: 'row' },
      field('Currency', cur),
      field('Amount', amt),
      h('button', { type: 'button', class: 'link', onclick: () => { row.remove(); renumber(); } }, 'Remove'));
    row.read = () => ({ currency: cur.value, amount: intOrRaw(amt.value) ?? 0 });
    rows.appendChild(row);
    renumber();
  };
  list.forEach(addRow);
  wrap.appendChild(h('button', { type: 'button', onclick: () => addRow({ currency: currencies[0] }) }, 'Add price'));
  return { node: wrap, read: () => [...rows.children].map((r) => r.read()) };
}

// localizedEditor edits name and description per locale; an empty string
// falls back to the default.
function localizedEditor(map) {
  const rows = h('div', { class: 'rows' });
  const wrap = h('fieldset', { class: 'field', 'data-path': 'localized' }, h('legend', {}, 'Translations'),
    h('p', { class: 'muted' }, 'Per BCP 47 locale (fr, pt-BR); empty fields fall back to the name and description above.'),
    rows, h('p', { class: 'field-error', hidden: true }));
  const addRow = (loc, t) => {
    const l = textInput('locale', loc, { size: 8, placeholder: 'fr' });
    const n = textInput('localized-name', t.name, { size: 30 });
    const d = textInput('localized-description', t.description, { size: 40 });
    const row = h('div', { class: 'row' }, field('Locale', l), field('Name', n), field('Description', d),
      h('button', { type: 'button', class: 'link', onclick: () => { row.remove(); } }, 'Remove'));
    row.read = () => [l.value.trim(), { ...(n.value ? { name: n.value } : {}), ...(d.value ? { description: d.value } : {}) }];
    rows.appendChild(row);
  };
  for (const [loc, t] of Object.entries(map)) addRow(loc, t);
  wrap.appendChild(h('button', { type: 'button', onclick: () => addRow('', {}) }, 'Add translation'));
  return {
    node: wrap,
    read: () => Object.fromEntries([...rows.children].map((r) => r.read()).filter(([l]) => l !== '')),
  };
}

// ---- diff and publish ----

export async function diffScreen(main) {
  const { data: d } = await api('GET', '/admin/v1/catalog/draft/diff');
  const pct = (b, a) => (b && a !== null && b !== null ? ` (${a > b ? '+' : ''}${(((a - b) * 100) / b).toFixed(1)}%)` : '');
  const priceTable = d.price_changes.length
    ? h('section', { class: 'card price-changes', id: 'price-changes' }, h('h2', {}, 'Price changes'),
      table(['Entry', 'Currency', 'Before', 'After', 'Change'], d.price_changes.map((p) =>
        h('tr', { class: p.after === null ? 'removed' : (p.before === null || p.after > p.before ? 'up' : 'down') },
          h('td', {}, h('a', { href: entityHref(p.section, p.id) }, `${p.section}/${p.id}`)),
          h('td', {}, p.currency),
          h('td', {}, p.before ?? '(none)'),
          h('td', { class: 'price-after' }, p.after ?? '(none)'),
          h('td', {}, pct(p.before, p.after))))))
    : null;
  // A bundle's creator shares follow from its contents' prices, so they
  // can change with no field of the bundle changing: the server lists
  // them, and they are shown apart, as money is.
  const shareChanges = d.creator_share_changes || [];
  const shareTable = shareChanges.length
    ? h('section', { class: 'card price-changes', id: 'creator-share-changes' }, h('h2', {}, 'Creator share changes'),
      table(['Entry', 'Paid in', 'Creator', 'Before', 'After'], shareChanges.map((c) =>
        h('tr', { class: c.after === null ? 'removed' : (c.before === null || c.after > c.before ? 'up' : 'down') },
          h('td', {}, h('a', { href: entityHref(c.section, c.id) }, `${c.section}/${c.id}`)),
          h('td', {}, c.currency || 'any currency'),
          h('td', {}, c.creator_id),
          h('td', {}, c.before === null ? '(none)' : percentPPM(c.before)),
          h('td', { class: 'price-after' }, c.after === null ? '(none)' : percentPPM(c.after))))))
    : null;
  const changes = h('section', { class: 'card', id: 'changes' }, h('h2', {}, 'Changes'),
    d.changes.length ? h('ul', { class: 'changes' }, d.changes.map((c) => h('li', { class: `change-${c.change}` },
      h('span', { class: 'badge' }, c.change), ' ',
      h('a', { href: entityHref(c.section, c.id) }, `${c.section}/${c.id}`),
      c.fields ? table(['Field', 'Before', 'After'], c.fields.map((f) =>
        h('tr', { class: f.path.startsWith('prices.') ? 'price-field' : null },
          h('td', {}, h('code', {}, f.path)), h('td', {}, json(f.before ?? undefined)), h('td', {}, json(f.after ?? undefined))))) : null)))
      : h('p', {}, 'The draft is the same as the live catalog.'));

  const parts = [
    h('h1', {}, 'Changes against live'),
    h('p', { class: 'muted', id: 'diff-summary' }, d.from_version ? `Against version ${d.from_version}: ` : 'Nothing is live yet: ',
      `${d.summary.added} added, ${d.summary.removed} removed, ${d.summary.changed} changed.`),
    priceTable, shareTable, changes,
  ];
  if (session.can('publisher') && d.changed) parts.push(publishForm(d));
  else if (session.can('publisher')) parts.push(h('p', { class: 'muted' }, 'Nothing to publish.'));
  mount(main, ...parts);
}

// percentPPM shows parts per million as an exact percentage (300000 is
// 30%, 12345 is 1.2345%).
function percentPPM(n) {
  const whole = Math.floor(n / 10000);
  const frac = String(n % 10000).padStart(4, '0').replace(/0+$/, '');
  return `${whole}${frac ? `.${frac}` : ''}%`;
}

function publishForm(d) {
  const note = textInput('note', '', { size: 50, placeholder: 'Winter sale prices' });
  const at = h('input', { type: 'datetime-local', name: 'publish_at', step: 60 });
  const result = h('div', { role: 'status', 'aria-live': 'polite', id: 'publish-result' });
  const button = h('button', { type: 'submit', class: 'primary', name: 'publish' }, 'Publish');
  const setLabel = () => { button.textContent = at.value ? 'Schedule' : 'Publish now'; };
  at.addEventListener('input', setLabel);
  setLabel();
  const send = async (supersede) => {
    const body = { note: note.value };
    if (at.value) body.publish_at = new Date(at.value).toISOString().replace(/\.\d+Z$/, 'Z');
    if (supersede) body.supersede_scheduled = true;
    try {
      const { data } = await api('POST', '/admin/v1/catalog/publish', { body, headers: { 'If-Match': d.draft_etag }, quiet: [409, 412] });
      mount(result, h('p', { class: 'ok' }, `Published version ${data.version} (${data.status}${data.status === 'scheduled' ? `, live at ${fmtTime(data.live_at)}` : ''}).`, ' ',
        h('a', { href: '#/versions' }, 'Versions')));
      button.remove();
    } catch (e) {
      if (e instanceof ApiError && e.status === 412) {
        mount(result, h('p', { class: 'error' }, 'The draft changed since this page was loaded, so this is not what you reviewed. ',
          h('button', { type: 'button', onclick: () => window.dispatchEvent(new HashChangeEvent('hashchange')) }, 'Reload the changes')));
        return;
      }
      if (e instanceof ApiError && e.status === 409) {
        const pending = (e.problem.pending_versions || []).map((v) => `version ${v.version} (live at ${fmtTime(v.live_at)})`).join(', ');
        mount(result, h('p', { class: 'error' }, `Publishing now would keep the scheduled ${pending} from ever going live. `,
          h('button', { type: 'button', class: 'danger', onclick: () => guard(() => send(true)) }, 'Publish and cancel the scheduled versions')));
        return;
      }
      throw e;
    }
  };
  const form = h('form', {
    class: 'card publish', id: 'publish-form',
    onsubmit: (ev) => {
      ev.preventDefault();
      button.disabled = true;
      guard(() => send(false)).finally(() => { button.disabled = false; });
    },
  },
  h('h2', {}, 'Publish'),
  field('Note (shown in versions and the audit log)', note),
  field('Publish at (your local time; empty for now)', at),
  h('div', { class: 'actions' }, button), result);
  return form;
}

// ---- versions and rollback ----

export async function versionsScreen(main, before) {
  const q = before ? `?before=${before}` : '';
  const { data } = await api('GET', `/admin/v1/catalog/versions${q}`);
  const live = data.versions.find((v) => v.status === 'live');
  const rows = data.versions.map((v) => {
    const cells = [
      h('td', {}, String(v.version)), h('td', {}, h('span', { class: `badge status-${v.status}` }, v.status)),
      h('td', {}, fmtTime(v.live_at)), h('td', {}, v.note || ''), h('td', {}, v.created_by || ''),
      h('td', {}, v.source_version ? `rollback to ${v.source_version}` : ''),
    ];
    if (session.can('publisher')) {
      cells.push(h('td', {}, live && v.version !== live.version && v.status !== 'scheduled'
        ? h('button', { type: 'button', name: `rollback-${v.version}`, onclick: (ev) => confirmRollback(ev.target, v.version) }, `Roll back to ${v.version}`) : ''));
    }
    return h('tr', {}, cells);
  });
  const headers = ['Version', 'Status', 'Live at', 'Note', 'By', 'Source'];
  if (session.can('publisher')) headers.push('');
  mount(main, h('h1', {}, 'Published versions'),
    table(headers, rows, { class: 'card' }),
    data.next_before ? h('p', {}, h('button', { type: 'button', onclick: () => guard(() => versionsScreen(main, data.next_before)) }, 'Older versions')) : null);
}

// confirmRollback asks in place rather than in a dialog, with a note.
function confirmRollback(button, version) {
  const cell = button.parentElement;
  const screenEl = button.closest('.screen');
  const note = textInput('rollback-note', `rollback to ${version}`, { size: 30 });
  const id = uid('rb');
  note.id = id;
  mount(cell, h('label', { for: id }, 'Note '), note, ' ',
    h('button', {
      type: 'button', class: 'danger',
      onclick: (ev) => {
        ev.target.disabled = true;
        guard(async () => {
          const { data } = await api('POST', '/admin/v1/catalog/rollback', { body: { version, note: note.value } });
          showInfo(`Version ${data.version} restores version ${version} (${data.status}).`);
          await versionsScreen(screenEl);
        }).finally(() => { ev.target.disabled = false; });
      },
    }, 'Confirm rollback'),
    h('button', { type: 'button', class: 'link', onclick: () => versionsScreen(screenEl) }, 'Cancel'));
  note.focus();
}
