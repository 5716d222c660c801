// Package creators pays the people who make a game live: creator accounts
// (id, display name, active or suspended, optionally the player they play
// as), their codes, the code each player has active, and an append-only
// journal of what every creator earned, in exact micro-units.
//
// It owns the Postgres tables creators, creator_codes, player_creator_codes,
// creator_credits and creator_payouts (migrations/012_creators.sql, which
// also documents the accounts). Credits for purchases, server spends and
// tips are written by the one ledger writer (package entitlements) in the
// posting's own transaction, using the rules here (Credit, Program);
// reversals run inside the caller's refund transaction (ReverseIn).
// Earnings, statements and payouts are sums over the journal: there is no
// creator balance row, so many players crediting one creator never
// serialize on one row.
//
// The accrual rule: a share is in parts per million (ppm), a credit is
// amount × share_ppm micro-units, exact, never rounded per posting; what a
// creator can be paid is floor(Σ micro / 1,000,000) whole units, and the
// remainder carries to the next posting. 1,000,000 purchases of 1 gem at 5%
// are 1,000,000 × 50,000 micro = 50,000 gems exactly.
//
// creators is a domain package: it must not import fiber, the server
// package or entitlements (entitlements imports it).
package creators
