// Package stores owns what coinop does with store purchases once a store
// verifier (package receipts) has read them: redeeming a verified purchase
// for a player (record and grant, once, then acknowledge it to Google Play),
// receiving store notifications into the durable inbox, and the store worker
// that acts on them (refunds, revocations, renewals, expiries) and retries
// Google acknowledgements left over by a crash.
//
// It holds no tables of its own: the inbox, store purchases and every change
// to holdings belong to entitlements, whose one ledger writer makes each
// change in one transaction. No store is called while a transaction is open.
//
// Errors: those of receipts (*receipts.InvalidError, ErrStoreUnavailable,
// ErrMisconfigured, ErrPushUnauthorized), of entitlements, and
// *DisabledError when the store a request needs is not configured.
//
// This package must not import fiber or the server package; see
// internal/archtest.
package stores
