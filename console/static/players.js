// Support screens: look up a player; their wallet, entitlements and
// subscriptions, ledger pages, store purchases, refunds and debts; and a
// grant with a reason. A grant's Idempotency-Key belongs to the grant being
// prepared, not to the HTTP request: it is made when the form is drawn or
// changed and replaced only after a grant succeeds, so a double click, a
// retry after a timeout, or a second tab sends the same key and the server
// grants once.

import { h, mount, field, table, fmtTime } from './dom.js';
import { api, guard, showInfo, clearAlert, ApiError } from './api.js';

const LEDGER_PAGE = 20;

export async function playersScreen(main) {
  const input = h('input', { type: 'text', name: 'player_id', autocomplete: 'off', required: true, size: 40, spellcheck: 'false' });
  const form = h('form', {
    class: 'card narrow',
    onsubmit: (ev) => {
      ev.preventDefault();
      const id = input.value.trim();
      if (id) location.hash = `#/players/${encodeURIComponent(id)}`;
    },
  },
  field('Player id', input),
  h('button', { type: 'submit', class: 'primary' }, 'Look up'));
  mount(main, h('h1', {}, 'Players'), h('p', {}, 'Look up a player by the id the game uses (the sub of their token).'), form);
  input.focus();
}

// playerPath is the URL segment of a player id: the server percent-decodes
// path segments, so any id travels encoded.
function playerPath(id) {
  return encodeURIComponent(id);
}

export async function playerScreen(main, id) {
  const pid = playerPath(id);
  const base = `/admin/v1/players/${pid}`;
  const holdingsEl = h('section', { class: 'card', id: 'holdings' });
  const ledgerEl = h('section', { class: 'card', id: 'ledger' });
  const purchasesEl = h('section', { class: 'card', id: 'store-purchases' });
  const debtsEl = h('section', { class: 'card', id: 'debts' });

  const loadHoldings = async () => {
    const { data } = await api('GET', `${base}/holdings`);
    const bal = Object.entries(data.balances).sort(([a], [b]) => a.localeCompare(b));
    mount(holdingsEl, h('h2', {}, 'Wallet and entitlements'),
      h('div', { class: 'cols' },
        h('div', {}, h('h3', {}, 'Balances'), table(['Currency', 'Balance'], bal.map(([c, n]) => h('tr', { 'data-currency': c }, h('td', {}, c), h('td', { class: 'num' }, String(n)))), { id: 'balances' })),
        h('div', {}, h('h3', {}, 'Entitlements and subscriptions'),
          data.entitlements.length
            ? table(['Item', 'Quantity', 'Expires'], data.entitlements.map((e) => h('tr', {}, h('td', {}, e.item_id), h('td', { class: 'num' }, String(e.quantity)),
              h('td', {}, e.expires_at ? `subscription until ${fmtTime(e.expires_at)}` : ''))))
            : h('p', { class: 'muted' }, 'None.'))));
  };

  const loadLedger = async (before, newer) => {
    const q = `?limit=${LEDGER_PAGE}${before ? `&before=${before}` : ''}`;
    const { data } = await api('GET', `${base}/ledger${q}`);
    const rows = data.transactions.map((t) => h('tr', { 'data-tx': t.id },
      h('td', { class: 'num' }, String(t.id)), h('td', {}, fmtTime(t.created_at)), h('td', {}, t.kind), h('td', {}, t.reference),
      h('td', {}, (t.entries || []).filter((e) => e.account === `player:${id}`)
        .map((e) => `${e.amount > 0 ? '+' : ''}${e.amount} ${e.asset_id}`).join(', ')),
      h('td', {}, reasonOf(t))));
    mount(ledgerEl, h('h2', {}, 'Ledger'),
      rows.length ? table(['#', 'At', 'Kind', 'Reference', 'Change', 'Reason'], rows, { id: 'ledger-table' }) : h('p', { class: 'muted' }, 'No transactions.'),
      h('div', { class: 'actions' },
        newer.length ? h('button', { type: 'button', onclick: () => guard(() => loadLedger(newer[newer.length - 1], newer.slice(0, -1))) }, 'Newer') : null,
        data.next_before ? h('button', { type: 'button', onclick: () => guard(() => loadLedger(data.next_before, [...newer, before || 0])) }, 'Older') : null));
  };

  const loadPurchases = async () => {
    const { data } = await api('GET', `${base}/store-purchases?limit=50`);
    mount(purchasesEl, h('h2', {}, 'Store purchases'),
      data.store_purchases.length
        ? table(['Store', 'Product', 'Transaction', 'Env', 'Qty', 'Purchased', 'Expires', 'Refunded'], data.store_purchases.map((p) => h('tr', { class: p.revoked_at ? 'revoked' : null },
          h('td', {}, p.store), h('td', {}, p.product_id), h('td', {}, p.transaction_id), h('td', {}, p.environment), h('td', { class: 'num' }, String(p.quantity)),
          h('td', {}, fmtTime(p.purchased_at)), h('td', {}, fmtTime(p.expires_at)), h('td', {}, p.revoked_at ? fmtTime(p.revoked_at) : ''))))
        : h('p', { class: 'muted' }, 'No store purchases.'));
  };

  const loadDebts = async () => {
    const { data } = await api('GET', `${base}/debts?limit=50`);
    mount(debtsEl, h('h2', {}, 'Refund debts'),
      h('p', { class: 'muted' }, 'What refunds of this player\'s purchases could not take back.'),
      data.debts.length
        ? table(['Store', 'Transaction', 'Asset', 'Amount', 'Policy', 'At'], data.debts.map((d) => h('tr', {},
          h('td', {}, d.store), h('td', {}, d.transaction_id), h('td', {}, `${d.asset_type} ${d.asset_id}`), h('td', { class: 'num' }, String(d.amount)),
          h('td', {}, d.policy), h('td', {}, fmtTime(d.created_at)))))
        : h('p', { class: 'muted' }, 'None.'));
  };

  const refresh = () => Promise.all([loadHoldings(), loadLedger(0, [])]);
  const grantEl = await grantForm(base, refresh);
  mount(main, h('p', {}, h('a', { href: '#/players' }, '← Players')),
    h('h1', {}, 'Player ', h('code', { id: 'player-id' }, id)),
    holdingsEl, grantEl, ledgerEl, purchasesEl, debtsEl);
  await Promise.all([loadHoldings(), loadLedger(0, []), loadPurchases(), loadDebts()]);
}

function reasonOf(t) {
  const m = t.metadata;
  if (m && typeof m === 'object') return m.reason || '';
  return '';
}

// grantForm grants currencies or items with a reason.
async function grantForm(base, refresh) {
  let cat = null;
  try {
    ({ data: cat } = await api('GET', '/v1/catalog', { anonymous: true, quiet: [503] }));
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 503)) throw e;
  }
  const section = h('section', { class: 'card', id: 'grant' }, h('h2', {}, 'Grant'));
  if (!cat) {
    section.appendChild(h('p', { class: 'muted' }, 'No catalog is live, so there is nothing to grant.'));
    return section;
  }
  const options = [
    ...cat.catalog.currencies.map((c) => h('option', { value: `currency:${c.id}` }, `${c.name} (${c.id})`)),
    ...cat.catalog.items.map((i) => h('option', { value: `item:${i.id}` }, `${i.name} (item ${i.id})`)),
  ];
  const what = h('select', { name: 'asset' }, options);
  const amount = h('input', { type: 'text', name: 'amount', inputmode: 'numeric', size: 12, required: true });
  const reason = h('input', { type: 'text', name: 'reason', size: 50, required: true, placeholder: 'Ticket 1234: purchase not delivered' });
  const keyNote = h('p', { class: 'muted small' });
  const result = h('div', { role: 'status', 'aria-live': 'polite', id: 'grant-result' });
  const button = h('button', { type: 'submit', class: 'primary', name: 'grant' }, 'Grant');
  let key = '';
  const newKey = () => {
    key = `console-${crypto.randomUUID()}`;
    keyNote.textContent = `Idempotency-Key ${key}`;
  };
  newKey();
  // A changed grant is a new grant: it gets a new key. An unchanged one
  // keeps its key, so sending it again cannot grant twice.
  for (const el of [what, amount, reason]) el.addEventListener('input', newKey);
  let busy = false;
  const form = h('form', {
    novalidate: true,
    onsubmit: (ev) => {
      ev.preventDefault();
      if (busy) return; // the second click of a double click
      const n = amount.value.trim();
      if (!/^\d+$/.test(n) || Number(n) < 1) {
        mount(result, h('p', { class: 'error' }, 'Amount must be a whole number of at least 1.'));
        amount.focus();
        return;
      }
      if (!reason.value.trim()) {
        mount(result, h('p', { class: 'error' }, 'Say why: the reason is kept in the ledger.'));
        reason.focus();
        return;
      }
      busy = true;
      button.disabled = true;
      clearAlert();
      const [kind, id] = what.value.split(/:(.*)/s);
      const body = { reason: reason.value.trim() };
      body[kind === 'currency' ? 'currencies' : 'items'] = { [id]: Number(n) };
      const sentKey = key;
      guard(async () => {
        const r = await api('POST', `${base}/grants`, { body, headers: { 'Idempotency-Key': sentKey } });
        const replayed = r.headers.get('Idempotent-Replayed') === 'true';
        mount(result, h('p', { class: 'ok' }, replayed
          ? `Already granted with this key: nothing was granted twice (grant ${r.data.grant_id ?? ''}).`
          : `Granted ${n} ${id}.`));
        newKey();
        amount.value = '';
        await refresh();
        showInfo(replayed ? 'That grant was already made.' : `Granted ${n} ${id}.`);
      }).finally(() => {
        busy = false;
        button.disabled = false;
      });
    },
  },
  h('div', { class: 'row' }, field('What', what), field('Amount', amount), field('Reason', reason)),
  h('div', { class: 'actions' }, button), keyNote, result);
  section.appendChild(form);
  return section;
}
