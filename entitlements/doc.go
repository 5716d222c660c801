// Package entitlements owns what players hold: currency balances, item
// inventory, the double-entry ledger that explains every change to them, and
// the idempotency records that make each change happen exactly once.
//
// It owns the Postgres tables players, balances, ledger_transactions,
// ledger_entries and idempotency_keys, and purchase_refunds (support
// refunds of purchases, purchase_refunds.go). Every change to holdings is a
// posting applied by one writer (writer.go), purchases group-committed
// (group.go): one Postgres transaction whose entries sum to zero per asset
// against a named system account, with the idempotency record; CHECK
// constraints make a negative balance impossible. Every posting that moves
// holdings also writes its event (package outbox) in that transaction.
// Response bodies are built in Go; SQL only returns data.
//
// The rules for what a purchase costs and grants come from the live catalog
// (package catalog). This package knows nothing of HTTP: it must not import
// fiber or the server package.
package entitlements
