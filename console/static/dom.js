// Building the page without HTML strings: the console's CSP requires
// Trusted Types, so innerHTML and friends are unusable, and building nodes
// with text content means nothing the server returns is ever parsed as
// markup.

// h creates an element: attrs sets attributes, "on*" keys add listeners,
// class sets the class; children are nodes, strings (as text), arrays, or
// null/false (skipped).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'value') {
      el.value = v;
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// mount replaces the children of el.
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let seq = 0;
// uid gives form controls ids for their labels.
export function uid(prefix) {
  seq += 1;
  return `${prefix}-${seq}`;
}

// field is a labelled control with room for its error message under it;
// path names the document path the server reports problems at.
export function field(label, control, path) {
  const id = control.id || uid('f');
  control.id = id;
  const err = h('p', { class: 'field-error', id: `${id}-err`, hidden: true });
  control.setAttribute('aria-describedby', err.id);
  const wrap = h('div', { class: 'field', 'data-path': path ?? null }, h('label', { for: id }, label), control, err);
  return wrap;
}

export function table(headers, rows, attrs) {
  return h('table', attrs || {},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows));
}

export function fmtTime(s) {
  if (!s) return '';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function json(v) {
  if (v === undefined) return '(none)';
  return JSON.stringify(v);
}
