// Package catalog owns the item catalog: the document designers write (JSON or
// YAML), its validation, the draft they edit before publishing, the diff of
// the draft against the live version, its immutable published versions in
// Postgres, and the in-memory snapshot every request reads.
//
// It owns the tables catalog_versions and catalog_drafts, and the Redis
// channel <prefix>catalog. Every publish inserts a new version and rows are
// never changed (a trigger refuses UPDATE and DELETE); each version has a
// live_at, now or scheduled, and the live catalog is the highest version
// whose live_at has passed, so any past version can be served again and a
// scheduled one takes effect on its own. Every write (draft edits, publishes,
// rollbacks) records an audit_log row through the SQL function coinop_audit,
// in the same transaction, and locks the draft row first, which serializes
// writers.
//
// The flow is Parse → Store.ReplaceDraft or PutDraftEntity → ValidateDraft →
// DiffDraft → Store.PublishDraft → Live.Set on the publishing replica. The
// Store's Notifier then announces the version on Redis after the commit, and
// every other replica's Notifier.Listen wakes its Live.Run, which calls
// Live.Refresh; Live.Run also polls Postgres (the fallback when Redis is down)
// and sets a timer to the next scheduled live_at. Readers call Live.Current
// and use the returned *Snapshot, which never changes, so a request sees one
// consistent catalog from start to finish.
//
// catalog is a domain package: it must not import fiber, fasthttp, or any other
// coinop package (server, entitlements, receipts, access, audit, cmd). Other
// packages depend on it, never the reverse; internal/archtest enforces this.
package catalog
