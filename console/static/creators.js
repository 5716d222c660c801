// Creator screens (support): every creator with its codes and status, a
// form to add one; one creator's codes (with a form to add one), suspend
// and reactivate, earnings per currency, the statement for a period with
// its CSV export and, for a key with the admin role, the payout.
//
// A payout's Idempotency-Key belongs to the payout being prepared, as a
// grant's does on the player screen: made when the screen is drawn and
// replaced only after a payout is recorded, so a double click or a retry
// records one payout.

import { h, mount, field, table, fmtTime } from './dom.js';
import { api, session, guard, flash, clearAlert, showProblem, ApiError } from './api.js';

const PAGE = 100;

export async function creatorsScreen(main) {
  const listEl = h('section', { class: 'card', id: 'creators' });
  const load = async (after, earlier) => {
    const q = `?limit=${PAGE}${after ? `&after=${encodeURIComponent(after)}` : ''}`;
    let data;
    try {
      ({ data } = await api('GET', `/admin/v1/creators${q}`, { quiet: [404] }));
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
      if (e.problem.code !== 'creators_disabled') {
        showProblem(e);
        throw e;
      }
      // A server setting, not a failure: say so where the list would be.
      mount(main, h('h1', {}, 'Creators'),
        h('p', { id: 'creators-disabled' }, 'The creator program is off on this server: start it with ',
          h('code', {}, 'COINOP_CREATOR_PROGRAM=true'), ' to have creators, codes and payouts.'));
      return;
    }
    const rows = data.creators.map((c) => h('tr', { 'data-creator': c.creator_id, class: c.status === 'suspended' ? 'revoked' : null },
      h('td', {}, h('a', { href: `#/creators/${encodeURIComponent(c.creator_id)}` }, c.creator_id)),
      h('td', {}, c.display_name), h('td', {}, c.status), h('td', {}, playerLink(c.player_id)),
      h('td', {}, (c.codes || []).join(', ')), h('td', {}, fmtTime(c.created_at))));
    mount(listEl,
      rows.length ? table(['Creator', 'Name', 'Status', 'Player', 'Codes', 'Created'], rows, { id: 'creators-table' })
        : h('p', { class: 'muted' }, 'No creators yet: add one below.'),
      h('div', { class: 'actions' },
        earlier.length ? h('button', { type: 'button', onclick: () => guard(() => load(earlier[earlier.length - 1], earlier.slice(0, -1))) }, 'Previous') : null,
        data.next_after ? h('button', { type: 'button', onclick: () => guard(() => load(data.next_after, [...earlier, after || ''])) }, 'Next') : null));
  };
  mount(main, h('h1', {}, 'Creators'),
    h('p', {}, 'Creators earn a share of purchases made under their codes, of sales of the items they made, and tips.'),
    listEl, newCreatorForm());
  await load('', []);
}

// newCreatorForm adds a creator and opens it.
function newCreatorForm() {
  const id = h('input', { type: 'text', name: 'creator_id', autocomplete: 'off', spellcheck: 'false', required: true, size: 24 });
  const name = h('input', { type: 'text', name: 'display_name', autocomplete: 'off', required: true, size: 30 });
  const player = h('input', { type: 'text', name: 'player_id', autocomplete: 'off', spellcheck: 'false', size: 24 });
  const codes = h('input', { type: 'text', name: 'codes', autocomplete: 'off', spellcheck: 'false', size: 30, placeholder: 'NINJA, ninja-2026' });
  const result = h('div', { role: 'status', 'aria-live': 'polite', id: 'new-creator-result' });
  const button = h('button', { type: 'submit', class: 'primary', name: 'create' }, 'Add creator');
  let busy = false;
  const form = h('form', {
    novalidate: true,
    onsubmit: (ev) => {
      ev.preventDefault();
      if (busy) return; // the second click of a double click
      if (!id.value.trim() || !name.value.trim()) {
        mount(result, h('p', { class: 'error' }, 'A creator needs an id and a display name.'));
        (id.value.trim() ? name : id).focus();
        return;
      }
      busy = true;
      button.disabled = true;
      clearAlert();
      mount(result);
      const body = {
        creator_id: id.value.trim(),
        display_name: name.value.trim(),
        codes: codes.value.split(',').map((s) => s.trim()).filter((s) => s),
      };
      if (player.value.trim()) body.player_id = player.value.trim();
      guard(async () => {
        const { data } = await api('POST', '/admin/v1/creators', { body });
        flash(`Added creator ${data.creator_id}.`);
        location.hash = `#/creators/${encodeURIComponent(data.creator_id)}`;
      }).finally(() => {
        busy = false;
        button.disabled = false;
      });
    },
  },
  h('h2', {}, 'Add a creator'),
  h('div', { class: 'row' }, field('Creator id', id), field('Display name', name), field('Player id (optional)', player),
    field('Codes (comma-separated, optional)', codes)),
  h('div', { class: 'actions' }, button), result);
  return h('section', { class: 'card', id: 'new-creator' }, form);
}

export async function creatorScreen(main, id) {
  const base = `/admin/v1/creators/${encodeURIComponent(id)}`;
  const titleEl = h('h1', {});
  const creatorEl = h('section', { class: 'card', id: 'creator' });
  const earningsEl = h('section', { class: 'card', id: 'earnings' });
  const statementEl = h('section', { class: 'card', id: 'statement' });

  const loadCreator = async () => {
    const { data: c } = await api('GET', base);
    mount(titleEl, `${c.display_name} (${c.creator_id})`);
    mount(creatorEl,
      h('p', {}, `Status: ${c.status}. Player: `, c.player_id ? playerLink(c.player_id) : 'none', `. Since ${fmtTime(c.created_at)}.`),
      h('p', { id: 'creator-codes' }, 'Codes: ', c.codes && c.codes.length ? c.codes.map((k, i) => [i ? ' ' : null, h('code', {}, k)]) : 'none'),
      c.status === 'active' ? addCodeForm(base, loadCreator) : null,
      statusButton(base, c, loadCreator));
  };

  const loadEarnings = async () => {
    const { data: earned } = await api('GET', `${base}/earnings`);
    const rows = earned.earnings.map((e) => h('tr', { 'data-currency': e.currency },
      h('td', {}, e.currency), h('td', { class: 'num' }, micro(e.pending_micro)), h('td', { class: 'num' }, String(e.available)),
      h('td', { class: 'num' }, micro(e.remainder_micro)), h('td', { class: 'num' }, String(e.paid)),
      h('td', { class: 'num' }, micro(e.debt_micro)), h('td', { class: 'num' }, micro(e.earned_micro))));
    mount(earningsEl, h('h2', {}, 'Earnings'),
      h('p', { class: 'muted' }, 'Pending credits wait out the hold before they are available; available is in whole units, and the fraction is carried to the next credit.'),
      rows.length ? table(['Currency', 'Pending', 'Available', 'Carried', 'Paid', 'Debt', 'Earned'], rows, { id: 'earnings-table' })
        : h('p', { class: 'muted' }, 'Nothing earned yet.'));
  };

  // period is the statement's [from, to) as the user chose it; null is
  // the server's default, the last 31 days up to now.
  let period = null;
  const loadStatement = async () => {
    const q = period ? `?from=${encodeURIComponent(period.from)}&to=${encodeURIComponent(period.to)}` : '';
    const { data: st } = await api('GET', `${base}/statement${q}`);
    const rows = st.lines.map((l) => h('tr', { 'data-line': String(l.line_id) },
      h('td', { class: 'num' }, String(l.line_id)), h('td', {}, fmtTime(l.created_at)), h('td', {}, l.kind),
      h('td', {}, l.currency), h('td', { class: 'num' }, l.amount),
      h('td', { class: 'ledger' }, l.ledger_transaction_id ? `${l.ledger_kind || ''} #${l.ledger_transaction_id}` : (l.payout_id ? `payout #${l.payout_id}` : '')),
      h('td', {}, playerLink(l.player_id)), h('td', {}, fmtTime(l.available_at))));
    mount(statementEl, h('h2', {}, `Statement, ${fmtTime(st.from)} to ${fmtTime(st.to)}`),
      rows.length ? table(['#', 'At', 'Kind', 'Currency', 'Amount', 'Ledger', 'Player', 'Available'], rows, { id: 'statement-table' })
        : h('p', { class: 'muted' }, 'No lines in this period.'),
      h('div', { class: 'actions' }, csvButton(base, st)),
      periodForm(st, (p) => {
        period = p;
        return loadStatement();
      }));
  };

  const refreshMoney = () => Promise.all([loadEarnings(), loadStatement()]);
  mount(main, h('p', {}, h('a', { href: '#/creators' }, '← Creators')), titleEl, creatorEl, earningsEl,
    session.can('admin') ? payoutForm(base, refreshMoney) : null, statementEl);
  await Promise.all([loadCreator(), refreshMoney()]);
}

// addCodeForm adds one more code to the creator.
function addCodeForm(base, reload) {
  const code = h('input', { type: 'text', name: 'code', autocomplete: 'off', spellcheck: 'false', required: true, size: 24 });
  const button = h('button', { type: 'submit', name: 'add-code' }, 'Add code');
  let busy = false;
  return h('form', {
    id: 'add-code',
    novalidate: true,
    onsubmit: (ev) => {
      ev.preventDefault();
      if (busy || !code.value.trim()) return;
      busy = true;
      button.disabled = true;
      clearAlert();
      guard(async () => {
        await api('POST', `${base}/codes`, { body: { code: code.value.trim() } });
        await reload();
      }).finally(() => {
        busy = false;
        button.disabled = false;
      });
    },
  },
  h('div', { class: 'row' }, field('New code (3–24 characters, any letter case)', code)), h('div', { class: 'actions' }, button));
}

// statusButton suspends an active creator or reactivates a suspended one.
// Suspending stops new credits, codes and tips; what was earned stays and
// can still be paid out.
function statusButton(base, c, reload) {
  const suspend = c.status === 'active';
  const button = h('button', {
    type: 'button',
    name: suspend ? 'suspend' : 'activate',
    class: suspend ? 'danger' : null,
    onclick: () => {
      button.disabled = true;
      clearAlert();
      guard(async () => {
        await api('PATCH', base, { body: { status: suspend ? 'suspended' : 'active' } });
        await reload();
      }).finally(() => { button.disabled = false; });
    },
  }, suspend ? 'Suspend' : 'Reactivate');
  return h('div', { class: 'actions' }, button,
    h('span', { class: 'muted small' }, suspend
      ? 'A suspended creator earns nothing new and takes no codes or tips; what it earned stays.'
      : 'Suspended: it earns nothing new until reactivated.'));
}

// payoutForm records a payout of what is available (admin only: the
// server refuses anyone else). What it pays is the server's to decide: every
// currency whose available earnings reach the payout minimum.
function payoutForm(base, refresh) {
  const keyNote = h('p', { class: 'muted small' });
  const result = h('div', { role: 'status', 'aria-live': 'polite', id: 'payout-result' });
  const button = h('button', { type: 'submit', class: 'primary', name: 'payout' }, 'Record payout');
  let key = '';
  const newKey = () => {
    key = `console-${crypto.randomUUID()}`;
    keyNote.textContent = `Idempotency-Key ${key}`;
  };
  newKey();
  let busy = false;
  const form = h('form', {
    novalidate: true,
    onsubmit: (ev) => {
      ev.preventDefault();
      if (busy) return;
      busy = true;
      button.disabled = true;
      clearAlert();
      mount(result);
      const sentKey = key;
      guard(async () => {
        try {
          const r = await api('POST', `${base}/payouts`, { headers: { 'Idempotency-Key': sentKey }, quiet: [409] });
          const paid = Object.entries(r.data.amounts).sort(([a], [b]) => a.localeCompare(b)).map(([c, n]) => `${n} ${c}`).join(', ');
          const replayed = r.headers.get('Idempotent-Replayed') === 'true';
          mount(result, h('p', { class: 'ok' }, replayed
            ? `Already recorded with this key: payout #${r.data.payout_id} (${paid}) was not recorded twice.`
            : `Recorded payout #${r.data.payout_id}: ${paid}.`));
          newKey();
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 409)) throw e;
          // The server names the minimum; what is still in its hold is
          // the other reason nothing is paid, so say it too.
          const { data: earned } = await api('GET', `${base}/earnings`);
          const pending = earned.earnings.filter((x) => x.pending_micro > 0).map((x) => `${micro(x.pending_micro)} ${x.currency}`);
          mount(result, h('p', { class: 'error' }, e.problem.detail || e.message),
            pending.length ? h('p', { class: 'muted' }, `Still in the hold, not yet available: ${pending.join(', ')}.`) : null);
        }
        await refresh();
      }).finally(() => {
        busy = false;
        button.disabled = false;
      });
    },
  },
  h('h2', {}, 'Payout'),
  h('p', {}, 'Records a payout of every currency whose available earnings reach the payout minimum, and moves it to paid. coinop records payouts; it does not send money.'),
  h('div', { class: 'actions' }, button), keyNote, result);
  return h('section', { class: 'card', id: 'payout' }, form);
}

// periodForm picks the statement's period in whole UTC days, both days
// included: a statement for a month is from its first day to its last.
function periodForm(st, choose) {
  const day = (t) => new Date(t).toISOString().slice(0, 10);
  const lastDay = new Date(new Date(st.to).getTime() - 1);
  const from = h('input', { type: 'date', name: 'from', required: true, value: day(st.from) });
  const to = h('input', { type: 'date', name: 'to', required: true, value: day(lastDay) });
  const note = h('p', { class: 'error', role: 'status' });
  return h('form', {
    id: 'statement-period',
    novalidate: true,
    onsubmit: (ev) => {
      ev.preventDefault();
      if (!from.value || !to.value || to.value < from.value) {
        mount(note, 'Choose a first day and a last day on or after it.');
        return;
      }
      const next = new Date(`${to.value}T00:00:00Z`);
      next.setUTCDate(next.getUTCDate() + 1);
      guard(() => choose({ from: `${from.value}T00:00:00Z`, to: next.toISOString() }));
    },
  },
  h('h3', {}, 'Another period'),
  h('div', { class: 'row' }, field('First day (UTC)', from), field('Last day (UTC), included', to)),
  h('div', { class: 'actions' }, h('button', { type: 'submit', name: 'period' }, 'Show statement')), note);
}

// csvButton downloads the statement shown, as CSV for a payment provider.
// A plain link cannot carry the key (it is a header, never a cookie), so
// the file is fetched and handed to the browser as a download; the period
// is the one shown, so the file holds exactly the lines on the screen.
function csvButton(base, st) {
  return h('button', {
    type: 'button',
    name: 'csv',
    onclick: () => guard(async () => {
      const q = `?format=csv&from=${encodeURIComponent(st.from)}&to=${encodeURIComponent(st.to)}`;
      const r = await api('GET', `${base}/statement${q}`, { headers: { Accept: 'text/csv' } });
      const disposition = r.headers.get('Content-Disposition') || '';
      const m = disposition.match(/filename="([^"]+)"/);
      const url = URL.createObjectURL(new Blob([r.data], { type: 'text/csv' }));
      const a = h('a', { href: url, download: m ? m[1] : `${st.creator_id}-statement.csv` });
      document.body.appendChild(a);
      a.click();
      a.remove();
      // The download has its own copy once started; a minute is ample.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    }),
  }, 'Export CSV');
}

// playerLink links a player id to the player's screen (support's, as this
// one is).
function playerLink(id) {
  if (!id) return '';
  return h('a', { href: `#/players/${encodeURIComponent(id)}` }, id);
}

// micro shows an exact micro-unit amount as a decimal (2500000 is 2.5).
function micro(n) {
  const neg = n < 0;
  const abs = Math.abs(n);
  const whole = Math.floor(abs / 1e6);
  const frac = String(abs % 1e6).padStart(6, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}
