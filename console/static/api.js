// The admin API client. The key lives in sessionStorage: it is gone when the
// tab closes, and no other tab, cookie or server ever sees it.

import { h, mount } from './dom.js';

const KEY = 'coinop.key';

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(k) {
    if (k) sessionStorage.setItem(KEY, k);
    else sessionStorage.removeItem(KEY);
  },
  me: null,
  can(role) { return !!this.me && this.me.can.includes(role); },
};

// ApiError is a refused request: status and the RFC 9457 problem.
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// api sends one request. It shows every refusal in the alert region (the
// server's reason, as the problem's detail says it) unless quiet is set for
// a refusal the caller shows itself, and throws ApiError.
export async function api(method, path, opts = {}) {
  const headers = { Accept: 'application/json', ...(opts.headers || {}) };
  if (!opts.anonymous) headers.Authorization = `Bearer ${session.key}`;
  let body;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    const err = new ApiError(0, { title: 'Network error', detail: `The server could not be reached (${e.message}).` });
    if (!opts.quiet) showProblem(err);
    throw err;
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!res.ok) {
    const problem = data && typeof data === 'object' ? data : { detail: String(text || res.statusText) };
    const err = new ApiError(res.status, problem);
    const quiet = opts.quiet === true || (Array.isArray(opts.quiet) && opts.quiet.includes(res.status));
    if (!quiet) showProblem(err);
    throw err;
  }
  return { data, etag: res.headers.get('ETag'), status: res.status, headers: res.headers };
}

const alertEl = () => document.getElementById('alert');

// showProblem puts a refusal where it is announced and seen: the title, the
// server's reason, and the problems it lists with their paths.
export function showProblem(err) {
  const p = err.problem || {};
  const what = err.status === 403 ? 'Refused' : (p.title || 'Error');
  const list = Array.isArray(p.errors) && p.errors.length
    ? h('ul', {}, p.errors.map((e) => h('li', {}, e.path ? h('code', {}, e.path) : null, e.path ? ': ' : '', e.message)))
    : null;
  const el = alertEl();
  mount(el,
    h('p', {}, h('strong', {}, `${what}: `), h('span', { class: 'alert-detail' }, p.detail || err.message),
      p.code ? h('span', { class: 'muted' }, ` (${p.code}${err.status ? `, HTTP ${err.status}` : ''})`) : null),
    list,
    h('button', { type: 'button', class: 'link', onclick: clearAlert }, 'Dismiss'));
  el.hidden = false;
  el.className = 'alert alert-error';
}

export function showInfo(text) {
  const el = alertEl();
  mount(el, h('p', {}, text), h('button', { type: 'button', class: 'link', onclick: clearAlert }, 'Dismiss'));
  el.hidden = false;
  el.className = 'alert alert-info';
}

let flashText = '';

// flash shows text on the next screen: for a message that goes with a
// navigation, which clears the alert region.
export function flash(text) {
  flashText = text;
}

// showFlash is called by the router once the new screen is chosen.
export function showFlash() {
  if (flashText) showInfo(flashText);
  flashText = '';
}

export function clearAlert() {
  const el = alertEl();
  el.hidden = true;
  el.replaceChildren();
}

// guard runs an event handler: refusals were shown by api already; anything
// else is a bug in the console, shown and logged (the browser tests fail on
// any console error).
export async function guard(fn) {
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof ApiError)) {
      console.error(e);
      showProblem(new ApiError(0, { title: 'Console error', detail: String(e && e.message ? e.message : e) }));
    }
  }
}
