// Package entitlements owns what players hold: currency balances, item
// inventory, the double-entry ledger that explains every change to them, and
// the idempotency records that make each change happen exactly once.
//
// It owns the Postgres tables players, balances, ledger_transactions,
// ledger_entries and idempotency_keys, and the function coinop_post that
// applies a change in one round trip (migrations/002). Every change is one
// Postgres transaction whose entries sum to zero per asset against a named
// system account; CHECK constraints make a negative balance impossible.
//
// The rules for what a purchase costs and grants come from the live catalog
// (package catalog). This package knows nothing of HTTP: it must not import
// fiber or the server package.
package entitlements
