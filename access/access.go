// Package access decides who may use the admin API and the game-server
// routes: admin API keys, the roles they hold, and fast verification of a
// key on every request.
//
// It owns the table admin_keys (migrations/006). A key is 256 random bits;
// only its SHA-256 hash is stored. A slow password hash (bcrypt, argon2)
// protects low-entropy secrets that people choose; these keys are random and
// cannot be guessed, so a plain hash is as safe and lets a request find its
// key with one index lookup. Verified keys are cached in memory for a short
// TTL (COINOP_KEY_CACHE_TTL), so most requests touch no database, and a
// revocation takes effect on every replica within that TTL (at once on the
// replica that revoked the key).
//
// Every key change is recorded in the audit log in the same transaction.
// access is a domain package: it must not import fiber or the server package.
package access

import (
	"fmt"
	"slices"
	"strings"
)

// Role is a permission a key holds.
type Role string

// The roles. A key holds one or more of them.
const (
	// RoleViewer reads the catalog: the draft, diffs, validation and versions.
	RoleViewer Role = "viewer"
	// RoleEditor edits the draft catalog.
	RoleEditor Role = "editor"
	// RolePublisher publishes the catalog, schedules and rolls it back.
	RolePublisher Role = "publisher"
	// RoleSupport grants to players and reads ledgers, the ledger audit and
	// the audit log.
	RoleSupport Role = "support"
	// RoleServer is a game server: entitlement checks and server postings
	// (award, spend, consume, exchange).
	RoleServer Role = "server"
	// RoleAdmin manages keys.
	RoleAdmin Role = "admin"
)

// Roles lists every role.
var Roles = []Role{RoleViewer, RoleEditor, RolePublisher, RoleSupport, RoleServer, RoleAdmin}

// implied lists what a role grants beyond itself: editing and publishing
// are impossible to do well without reading the draft and the diff.
var implied = map[Role][]Role{
	RoleEditor:    {RoleViewer},
	RolePublisher: {RoleViewer},
}

// ParseRoles parses role names given as a list and/or comma-separated
// ("editor,publisher"), dropping duplicates. It returns an *InvalidError for
// an unknown role or an empty list.
func ParseRoles(names ...string) ([]Role, error) {
	var out []Role
	for _, n := range names {
		for _, part := range strings.Split(n, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			r := Role(part)
			if !slices.Contains(Roles, r) {
				return nil, &InvalidError{Field: "roles", Message: fmt.Sprintf("unknown role %q: use %s", part, roleList())}
			}
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 {
		return nil, &InvalidError{Field: "roles", Message: "at least one role is required: " + roleList()}
	}
	slices.Sort(out)
	return out, nil
}

func roleList() string {
	s := make([]string, len(Roles))
	for i, r := range Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// Principal is an authenticated caller.
type Principal struct {
	// Actor names the caller in the audit log: "key:<name>" for a key,
	// BootstrapActor for COINOP_ADMIN_TOKEN.
	Actor string
	// KeyID is the key's id; 0 for the bootstrap token.
	KeyID int64
	Roles []Role
	// Limits bound what a game-server key may move; nil means none.
	Limits *Limits
}

// BootstrapActor is the audit log's name for COINOP_ADMIN_TOKEN.
const BootstrapActor = "admin-token"

// Bootstrap is the principal of COINOP_ADMIN_TOKEN: it holds every admin
// API role, so a fresh installation can create its first keys.
func Bootstrap() Principal {
	return Principal{Actor: BootstrapActor, Roles: []Role{RoleViewer, RoleEditor, RolePublisher, RoleSupport, RoleAdmin}}
}

// Can reports whether p holds r, directly or through a role that implies it.
func (p Principal) Can(r Role) bool {
	for _, have := range p.Roles {
		if have == r || slices.Contains(implied[have], r) {
			return true
		}
	}
	return false
}

// InvalidError is a malformed input: a bad key name or role.
type InvalidError struct {
	Field, Message string
}

func (e *InvalidError) Error() string { return "access: " + e.Field + ": " + e.Message }
