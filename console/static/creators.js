// Creator screens (support): every creator with its codes and status, and
// one creator's earnings per currency and statement lines for a period.
// Read-only: suspending, codes and payouts are the admin API's and
// `coinop creators`'s.

import { h, mount, table, fmtTime } from './dom.js';
import { api, guard } from './api.js';

const PAGE = 100;

export async function creatorsScreen(main) {
  const listEl = h('section', { class: 'card', id: 'creators' });
  const load = async (after, earlier) => {
    const q = `?limit=${PAGE}${after ? `&after=${encodeURIComponent(after)}` : ''}`;
    const { data } = await api('GET', `/admin/v1/creators${q}`);
    const rows = data.creators.map((c) => h('tr', { 'data-creator': c.creator_id, class: c.status === 'suspended' ? 'revoked' : null },
      h('td', {}, h('a', { href: `#/creators/${encodeURIComponent(c.creator_id)}` }, c.creator_id)),
      h('td', {}, c.display_name), h('td', {}, c.status), h('td', {}, c.player_id || ''),
      h('td', {}, c.codes.join(', ')), h('td', {}, fmtTime(c.created_at))));
    mount(listEl,
      rows.length ? table(['Creator', 'Name', 'Status', 'Player', 'Codes', 'Created'], rows, { id: 'creators-table' })
        : h('p', { class: 'muted' }, 'No creators yet (POST /admin/v1/creators or coinop creators create).'),
      h('div', { class: 'actions' },
        earlier.length ? h('button', { type: 'button', onclick: () => guard(() => load(earlier[earlier.length - 1], earlier.slice(0, -1))) }, 'Previous') : null,
        data.next_after ? h('button', { type: 'button', onclick: () => guard(() => load(data.next_after, [...earlier, after || ''])) }, 'Next') : null));
  };
  mount(main, h('h1', {}, 'Creators'),
    h('p', {}, 'Creators earn a share of purchases made under their codes, of sales of the items they made, and tips.'), listEl);
  await load('', []);
}

export async function creatorScreen(main, id) {
  const base = `/admin/v1/creators/${encodeURIComponent(id)}`;
  const { data: c } = await api('GET', base);
  const { data: earned } = await api('GET', `${base}/earnings`);
  const { data: st } = await api('GET', `${base}/statement`);
  const earningRows = earned.earnings.map((e) => h('tr', { 'data-currency': e.currency },
    h('td', {}, e.currency), h('td', { class: 'num' }, micro(e.pending_micro)), h('td', { class: 'num' }, String(e.available)),
    h('td', { class: 'num' }, micro(e.remainder_micro)), h('td', { class: 'num' }, String(e.paid)),
    h('td', { class: 'num' }, micro(e.debt_micro)), h('td', { class: 'num' }, micro(e.earned_micro))));
  const lineRows = st.lines.map((l) => h('tr', { 'data-line': String(l.line_id) },
    h('td', { class: 'num' }, String(l.line_id)), h('td', {}, fmtTime(l.created_at)), h('td', {}, l.kind),
    h('td', {}, l.currency), h('td', { class: 'num' }, l.amount),
    h('td', {}, l.ledger_transaction_id ? `${l.ledger_kind || ''} #${l.ledger_transaction_id}` : (l.payout_id ? `payout #${l.payout_id}` : '')),
    h('td', {}, l.player_id || ''), h('td', {}, fmtTime(l.available_at))));
  mount(main,
    h('h1', {}, `${c.display_name} (${c.creator_id})`),
    h('section', { class: 'card', id: 'creator' },
      h('p', {}, `Status: ${c.status}. Player: ${c.player_id || 'none'}. Since ${fmtTime(c.created_at)}.`),
      h('p', {}, 'Codes: ', c.codes.length ? c.codes.map((k) => h('code', {}, k)) : 'none')),
    h('section', { class: 'card', id: 'earnings' }, h('h2', {}, 'Earnings'),
      earningRows.length ? table(['Currency', 'Pending', 'Available', 'Carried', 'Paid', 'Debt', 'Earned'], earningRows, { id: 'earnings-table' })
        : h('p', { class: 'muted' }, 'Nothing earned yet.')),
    h('section', { class: 'card', id: 'statement' }, h('h2', {}, `Statement, ${fmtTime(st.from)} to ${fmtTime(st.to)}`),
      lineRows.length ? table(['#', 'At', 'Kind', 'Currency', 'Amount', 'Ledger', 'Player', 'Available'], lineRows, { id: 'statement-table' })
        : h('p', { class: 'muted' }, 'No lines in this period.')));
}

// micro shows an exact micro-unit amount as a decimal (2500000 is 2.5).
function micro(n) {
  const neg = n < 0;
  const abs = Math.abs(n);
  const whole = Math.floor(abs / 1e6);
  const frac = String(abs % 1e6).padStart(6, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}
