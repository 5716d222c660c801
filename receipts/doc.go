// Package receipts turns what a store hands a player (an App Store signed
// transaction or legacy receipt, a Google Play purchase token) or what a store
// pushes to the server (App Store Server Notifications v2, Google Play
// real-time developer notifications over Pub/Sub) into one verified,
// normalized [Purchase].
//
// It verifies and normalizes only. Recording the purchase and granting what
// it buys happens elsewhere, in one database transaction, after the network
// calls made here have finished. The package also holds the store clients
// used to acknowledge and consume Google Play purchases.
//
// Apple signed data (JWS) is verified locally by [AppleVerifier]: ES256 only,
// an x5c chain to a configured root pool (Apple Root CA G3 by default) with
// Apple's marker OIDs, the signature, the bundle id and the environment. The
// go-iap module is used for claim types and store HTTP clients only: its own
// JWS verification is hard-wired to Apple's root and the wall clock, and some
// of its parsers panic on untrusted input, so none of them is given input from
// a player or from the network.
//
// Errors: *InvalidError (the input is not a valid purchase; never retry it),
// ErrStoreUnavailable (the store could not answer; retry later, record
// nothing), ErrMisconfigured (our own credentials or settings were refused).
//
// This package must not import fiber, the server package, database drivers
// (pgx, go-redis) or other coinop packages; see deps_test.go.
package receipts
