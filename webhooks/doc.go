// Package webhooks delivers the event outbox (package outbox) to HTTP
// endpoints as signed webhooks in the Standard Webhooks format
// (webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256
// of "id.timestamp.body">), signed with the reference library.
//
// It owns the tables webhook_endpoints and webhook_deliveries
// (migrations/011). Endpoints are managed with Endpoints (admin API and
// `coinop webhooks`), every change recorded in the audit log in its own
// transaction. A Worker, run by every replica, fans new events out into
// deliveries by reading events after each endpoint's cursor (never in the
// posting's transaction, so delivery cannot block or slow a posting),
// claims due deliveries with a lease (FOR UPDATE SKIP LOCKED; a crashed
// replica's leases expire and another replica takes them), and posts them
// with no database connection held during the HTTP call. A 2xx answer
// delivers; anything else is retried on Schedule, with jitter, and then
// the delivery fails. An endpoint whose every attempt has failed for
// DisableAfter is disabled.
//
// webhooks is a domain package: it must not import fiber or the server
// package.
package webhooks
