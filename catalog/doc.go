// Package catalog owns the item catalog: the document designers write (JSON or
// YAML), its validation, its immutable published versions in Postgres, and the
// in-memory snapshot every request reads.
//
// It owns the table catalog_versions. Every publish inserts a new row and rows
// are never changed (a trigger refuses UPDATE and DELETE), so the live catalog
// is simply the highest version and any past version can be served again.
//
// The flow is Parse → Validate → Store.Publish → Live.Set on the publishing
// replica, and Live.Refresh (polled by Live.Run) on every other replica.
// Readers call Live.Current and use the returned *Snapshot, which never
// changes, so a request sees one consistent catalog from start to finish.
//
// catalog is a domain package: it must not import fiber, fasthttp, or any other
// coinop package (server, entitlements, receipts, cmd). Other packages depend
// on it, never the reverse; internal/archtest enforces this.
package catalog
