// The audit log of admin writes, with filters, and the store notification
// inbox with refunds and debts.

import { h, mount, field, table, fmtTime } from './dom.js';
import { api, guard } from './api.js';

// rfc3339 turns a datetime-local value (the user's local time) into UTC.
function rfc3339(local) {
  return local ? new Date(local).toISOString().replace(/\.\d+Z$/, 'Z') : '';
}

export async function auditScreen(main) {
  const inputs = {
    actor: h('input', { type: 'text', name: 'actor', size: 20, placeholder: 'key:alice' }),
    action: h('input', { type: 'text', name: 'action', size: 20, placeholder: 'catalog.publish' }),
    target: h('input', { type: 'text', name: 'target', size: 24, placeholder: 'catalog/draft/items/sword' }),
    since: h('input', { type: 'datetime-local', name: 'since' }),
    until: h('input', { type: 'datetime-local', name: 'until' }),
  };
  const results = h('div', { id: 'audit-results' });
  const load = async (cursor, append) => {
    const q = new URLSearchParams({ limit: '50' });
    for (const k of ['actor', 'action', 'target']) if (inputs[k].value.trim()) q.set(k, inputs[k].value.trim());
    for (const k of ['since', 'until']) if (inputs[k].value) q.set(k, rfc3339(inputs[k].value));
    if (cursor) q.set('cursor', cursor);
    const { data } = await api('GET', `/admin/v1/audit-log?${q}`);
    const rows = data.entries.map((e) => h('tr', {},
      h('td', {}, fmtTime(e.at)), h('td', {}, e.actor), h('td', {}, e.action), h('td', {}, e.target),
      h('td', {}, h('details', {}, h('summary', {}, 'Before / after'),
        h('pre', {}, `before: ${JSON.stringify(e.before, null, 2)}\nafter: ${JSON.stringify(e.after, null, 2)}`))),
      h('td', { class: 'small' }, e.request_id)));
    let tbody = results.querySelector('tbody');
    if (!append || !tbody) {
      mount(results, data.entries.length ? table(['At', 'Actor', 'Action', 'Target', 'Change', 'Request'], []) : h('p', { class: 'muted' }, 'No entries match.'));
      tbody = results.querySelector('tbody');
    }
    if (tbody) rows.forEach((r) => tbody.appendChild(r));
    results.querySelector('.more')?.remove();
    if (data.next_cursor) {
      results.appendChild(h('p', { class: 'more' }, h('button', { type: 'button', onclick: () => guard(() => load(data.next_cursor, true)) }, 'More')));
    }
  };
  const form = h('form', {
    class: 'card toolbar',
    onsubmit: (ev) => { ev.preventDefault(); guard(() => load('', false)); },
  },
  field('Actor', inputs.actor), field('Action', inputs.action), field('Target', inputs.target),
  field('Since', inputs.since), field('Until', inputs.until),
  h('button', { type: 'submit', class: 'primary' }, 'Filter'));
  mount(main, h('h1', {}, 'Audit log'), h('p', { class: 'muted' }, 'Every admin write, newest first.'), form, results);
  await load('', false);
}

export async function inboxScreen(main) {
  const status = h('select', { name: 'status' }, ['', 'pending', 'processed', 'failed'].map((s) => h('option', { value: s }, s || 'any status')));
  const list = h('div', { id: 'inbox-results' });
  const load = async () => {
    const q = status.value ? `&status=${status.value}` : '';
    const { data } = await api('GET', `/admin/v1/store-notifications?limit=100${q}`);
    mount(list, data.notifications.length
      ? table(['Received', 'Store', 'Kind', 'Id', 'Status', 'Attempts', 'Last error', 'Processed'], data.notifications.map((n) => h('tr', { class: `status-${n.status}` },
        h('td', {}, fmtTime(n.received_at)), h('td', {}, n.store), h('td', {}, n.kind), h('td', { class: 'small' }, n.notification_id),
        h('td', {}, h('span', { class: `badge status-${n.status}` }, n.status)), h('td', { class: 'num' }, String(n.attempts)),
        h('td', {}, n.last_error || ''), h('td', {}, fmtTime(n.processed_at)))))
      : h('p', { class: 'muted' }, 'No notifications.'));
  };
  status.addEventListener('change', () => guard(load));
  const { data: rd } = await api('GET', '/admin/v1/refunds?limit=100');
  mount(main, h('h1', {}, 'Store inbox'),
    h('section', { class: 'card' }, h('h2', {}, 'Notifications'), h('p', { class: 'muted' }, 'What Apple and Google told this server, and what the worker made of it.'),
      field('Show', status), list),
    h('section', { class: 'card' }, h('h2', {}, 'Refunds'),
      rd.refunds.length ? table(['Revoked', 'Store', 'Player', 'Product', 'Transaction'], rd.refunds.map((p) => h('tr', {},
        h('td', {}, fmtTime(p.revoked_at)), h('td', {}, p.store), h('td', {}, h('a', { href: `#/players/${encodeURIComponent(p.player_id)}` }, p.player_id)),
        h('td', {}, p.product_id), h('td', {}, p.transaction_id)))) : h('p', { class: 'muted' }, 'No refunds.')),
    h('section', { class: 'card' }, h('h2', {}, 'Debts'),
      rd.debts.length ? table(['At', 'Player', 'Asset', 'Amount', 'Policy'], rd.debts.map((d) => h('tr', {},
        h('td', {}, fmtTime(d.created_at)), h('td', {}, h('a', { href: `#/players/${encodeURIComponent(d.player_id)}` }, d.player_id)),
        h('td', {}, `${d.asset_type} ${d.asset_id}`), h('td', { class: 'num' }, String(d.amount)), h('td', {}, d.policy)))) : h('p', { class: 'muted' }, 'No debts.')));
  await load();
}
