// The console's shell: sign-in, the navigation the key's roles allow, and a
// hash router (#/catalog, #/players/p1, ...) so every screen has a URL and
// the back button works.

import { h, mount, field } from './dom.js';
import { api, session, guard, clearAlert, showFlash, ApiError, showProblem } from './api.js';
import { catalogScreen, entityScreen, diffScreen, versionsScreen } from './catalog.js';
import { playersScreen, playerScreen } from './players.js';
import { auditScreen, inboxScreen } from './logs.js';
import { creatorsScreen, creatorScreen } from './creators.js';

const screens = [
  { re: /^#\/catalog$/, role: 'viewer', nav: 'Catalog', href: '#/catalog', show: catalogScreen },
  { re: /^#\/catalog\/(currencies|items|bundles|store_products)\/(.+)$/, role: 'viewer', show: entityScreen },
  { re: /^#\/new\/(currencies|items|bundles|store_products)$/, role: 'editor', show: (main, sec) => entityScreen(main, sec, null) },
  { re: /^#\/diff$/, role: 'viewer', nav: 'Changes', href: '#/diff', show: diffScreen },
  { re: /^#\/versions$/, role: 'viewer', nav: 'Versions', href: '#/versions', show: versionsScreen },
  { re: /^#\/players$/, role: 'support', nav: 'Players', href: '#/players', show: playersScreen },
  { re: /^#\/players\/(.+)$/, role: 'support', show: playerScreen },
  { re: /^#\/audit$/, role: 'support', nav: 'Audit log', href: '#/audit', show: auditScreen },
  { re: /^#\/inbox$/, role: 'support', nav: 'Store inbox', href: '#/inbox', show: inboxScreen },
  { re: /^#\/creators$/, role: 'support', nav: 'Creators', href: '#/creators', show: creatorsScreen },
  { re: /^#\/creators\/(.+)$/, role: 'support', show: creatorScreen },
];

const main = () => document.getElementById('main');

function signInScreen(reason) {
  mount(document.getElementById('nav'));
  mount(document.getElementById('who'));
  const input = h('input', { type: 'password', name: 'key', autocomplete: 'off', required: true, spellcheck: 'false', size: 50 });
  const form = h('form', {
    class: 'card narrow',
    onsubmit: (ev) => {
      ev.preventDefault();
      guard(async () => {
        session.key = input.value.trim();
        await loadMe();
        clearAlert();
        route();
      });
    },
  },
  h('h1', {}, 'Sign in'),
  h('p', {}, 'Paste an admin API key (made with ', h('code', {}, 'coinop keys create'), '). It is kept in this tab only and forgotten when the tab closes.'),
  reason ? h('p', { class: 'error' }, reason) : null,
  field('API key', input),
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  mount(main(), form);
  input.focus();
}

async function loadMe() {
  try {
    const { data } = await api('GET', '/admin/v1/me', { quiet: [401] });
    session.me = data;
  } catch (e) {
    session.key = null;
    session.me = null;
    if (e instanceof ApiError && e.status === 401) {
      showProblem(e);
    }
    throw e;
  }
}

function signOut() {
  session.key = null;
  session.me = null;
  clearAlert();
  location.hash = '';
  signInScreen();
}

function chrome(current) {
  const links = screens.filter((s) => s.nav && session.can(s.role)).map((s) =>
    h('a', { href: s.href, 'aria-current': current && current.href === s.href ? 'page' : null }, s.nav));
  mount(document.getElementById('nav'), links);
  mount(document.getElementById('who'),
    h('span', { class: 'actor' }, session.me.actor),
    h('span', { class: 'roles' }, session.me.roles.join(', ')),
    h('button', { type: 'button', onclick: signOut }, 'Sign out'));
}

async function route() {
  if (!session.key) {
    signInScreen();
    return;
  }
  if (!session.me) {
    try {
      await loadMe();
    } catch {
      signInScreen('Sign in again: the key was not accepted.');
      return;
    }
  }
  const hash = location.hash || '';
  let screen = null;
  let args = [];
  for (const s of screens) {
    const m = hash.match(s.re);
    if (m) {
      screen = s;
      args = m.slice(1).map(decodeURIComponent);
      break;
    }
  }
  const first = screens.find((s) => s.nav && session.can(s.role));
  if (!screen) {
    if (first) {
      location.replace(first.href);
    } else {
      chrome(null);
      mount(main(), h('p', {}, 'This key holds no role the console serves (', session.me.roles.join(', '), ').'));
    }
    return;
  }
  chrome(screens.find((s) => s.nav && hash.startsWith(s.href)) || screen);
  clearAlert();
  showFlash();
  // Each visit draws into its own element: a slow screen the user already
  // left then finishes into a detached node instead of over the new one.
  const el = h('div', { class: 'screen' });
  mount(main(), el);
  if (!session.can(screen.role)) {
    mount(el, h('p', { class: 'error' }, `This screen needs a key with the ${screen.role} role.`));
    return;
  }
  mount(el, h('p', { class: 'muted' }, 'Loading…'));
  await guard(() => screen.show(el, ...args));
}

window.addEventListener('hashchange', () => { route(); });
route();
