package access

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestParseRoles(t *testing.T) {
	got, err := ParseRoles("publisher,editor", " viewer ", "editor")
	if err != nil || !slices.Equal(got, []Role{RoleEditor, RolePublisher, RoleViewer}) {
		t.Errorf("ParseRoles = %v, %v", got, err)
	}
	var ie *InvalidError
	for _, bad := range [][]string{{"root"}, {}, {" , "}, {"viewer,Viewer"}} {
		if _, err := ParseRoles(bad...); !errors.As(err, &ie) {
			t.Errorf("ParseRoles(%q) = %v, want *InvalidError", bad, err)
		}
	}
}

func TestWhatEachRoleCanDo(t *testing.T) {
	can := func(p Principal) string {
		var out []string
		for _, r := range Roles {
			if p.Can(r) {
				out = append(out, string(r))
			}
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		roles []Role
		want  string
	}{
		{[]Role{RoleViewer}, "viewer"},
		{[]Role{RoleEditor}, "viewer,editor"},
		{[]Role{RolePublisher}, "viewer,publisher"},
		{[]Role{RoleSupport}, "support"},
		{[]Role{RoleServer}, "server"},
		{[]Role{RoleAdmin}, "admin"},
		{[]Role{RoleEditor, RoleSupport}, "viewer,editor,support"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := can(Principal{Roles: tt.roles}); got != tt.want {
			t.Errorf("%v can %s, want %s", tt.roles, got, tt.want)
		}
	}
	if got := can(Bootstrap()); got != "viewer,editor,publisher,support,admin" {
		t.Errorf("the bootstrap token can %s; it holds every admin API role but not server", got)
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"alice", "ci-publisher", "alice@studio.example", "A1", "x"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-alice", "a b", "12", strings.Repeat("a", 65), "al/ice"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) accepted", bad)
		}
	}
}

var cli = audit.Attribution{Actor: "cli:ops"}

func TestKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, _ := testenv.NewPool(t)
	keys := NewKeys(pool, KeysConfig{CacheTTL: time.Hour})
	key, secret, err := keys.Create(ctx, "alice", []Role{RoleEditor}, cli)
	if err != nil {
		t.Fatal(err)
	}
	if !LooksLikeKey(secret) || key.Prefix != secret[:len(KeyPrefix)+4] || key.CreatedBy != "cli:ops" {
		t.Fatalf("Create = %+v, %q", key, secret)
	}

	var bobID int64
	t.Run("only the hash is stored", func(t *testing.T) {
		var stored []byte
		if err := pool.QueryRow(ctx, `SELECT key_hash FROM admin_keys WHERE id = $1`, key.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(secret))
		if string(stored) != string(sum[:]) {
			t.Error("key_hash is not the SHA-256 of the key")
		}
		var n int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM admin_keys WHERE key_hash::text LIKE '%' || $1 || '%' OR key_prefix = $2`, secret[len(KeyPrefix):], secret).Scan(&n)
		if n != 0 {
			t.Error("the key itself is in the table")
		}
	})
	t.Run("authenticate returns the principal, then answers from memory", func(t *testing.T) {
		p, err := keys.Authenticate(ctx, secret)
		if err != nil || p.Actor != "key:alice" || p.KeyID != key.ID || !p.Can(RoleViewer) || p.Can(RolePublisher) {
			t.Fatalf("Authenticate = %+v, %v", p, err)
		}
		// Revoke behind the cache's back: this replica still trusts the
		// key until the TTL ends, which is the documented trade-off.
		if _, err := pool.Exec(ctx, `UPDATE admin_keys SET revoked_at = now() WHERE id = $1`, key.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.Authenticate(ctx, secret); err != nil {
			t.Errorf("a cached key was checked again within the TTL: %v", err)
		}
		keys.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		defer func() { keys.now = time.Now }()
		if _, err := keys.Authenticate(ctx, secret); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("after the TTL a revoked key = %v, want ErrUnknownKey", err)
		}
	})
	t.Run("made-up and malformed tokens are unknown", func(t *testing.T) {
		for _, tok := range []string{"", "admin", KeyPrefix, KeyPrefix + strings.Repeat("A", 43), secret + "x"} {
			if _, err := keys.Authenticate(ctx, tok); !errors.Is(err, ErrUnknownKey) {
				t.Errorf("Authenticate(%q) = %v", tok, err)
			}
		}
	})
	t.Run("names are unique forever", func(t *testing.T) {
		if _, _, err := keys.Create(ctx, "alice", []Role{RoleViewer}, cli); !errors.Is(err, ErrNameTaken) {
			t.Errorf("a second alice = %v, want ErrNameTaken", err)
		}
	})
	t.Run("revoke by name or id, once, forgetting the key at once", func(t *testing.T) {
		bkey, bsecret, err := keys.Create(ctx, "bob", []Role{RoleServer}, cli)
		if err != nil {
			t.Fatal(err)
		}
		bobID = bkey.ID
		if _, err := keys.Authenticate(ctx, bsecret); err != nil {
			t.Fatal(err)
		}
		got, err := keys.Revoke(ctx, "bob", cli)
		if err != nil || got.RevokedAt == nil || got.RevokedBy != "cli:ops" {
			t.Fatalf("Revoke = %+v, %v", got, err)
		}
		if _, err := keys.Authenticate(ctx, bsecret); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("the revoking replica still accepts the key: %v", err)
		}
		again, err := keys.Revoke(ctx, strconv.FormatInt(bkey.ID, 10), cli) // revoked already
		if err != nil || again.ID != bkey.ID || !again.RevokedAt.Equal(*got.RevokedAt) {
			t.Errorf("second revoke = %+v, %v", again, err)
		}
		if _, err := keys.Revoke(ctx, "nobody", cli); !errors.Is(err, ErrKeyNotFound) {
			t.Errorf("revoke nobody = %v", err)
		}
		active, _ := keys.List(ctx, false)
		all, _ := keys.List(ctx, true)
		if len(active) != 0 || len(all) != 2 {
			t.Errorf("List = %d active, %d in all; want 0 and 2", len(active), len(all))
		}
	})
	t.Run("every change is audited", func(t *testing.T) {
		entries, _, err := audit.New(pool).List(ctx, audit.Filter{Target: "keys/*"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Action+" "+e.Target+" "+e.Actor)
			if strings.Contains(string(e.After), "hash") {
				t.Errorf("audit entry holds the hash: %s", e.After)
			}
		}
		bob := "keys/" + strconv.FormatInt(bobID, 10)
		if want := "key.revoke " + bob + " cli:ops|key.create " + bob + " cli:ops|key.create keys/1 cli:ops"; strings.Join(got, "|") != want {
			t.Errorf("audit = %q, want %q", strings.Join(got, "|"), want)
		}
	})
}

func TestAuthenticateKeepsAVerifiedKeyWhenPostgresIsDown(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, _ := testenv.NewPool(t)
	keys := NewKeys(pool, KeysConfig{CacheTTL: time.Minute})
	_, secret, err := keys.Create(ctx, "gameserver", []Role{RoleServer}, cli)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	keys.now = func() time.Time { return time.Now().Add(time.Hour) } // the entry is stale
	if p, err := keys.Authenticate(ctx, secret); err != nil || !p.Can(RoleServer) {
		t.Errorf("a verified key during an outage = %+v, %v; want it kept", p, err)
	}
	other := KeyPrefix + strings.Repeat("B", 43)
	if _, err := keys.Authenticate(ctx, other); err == nil || errors.Is(err, ErrUnknownKey) {
		t.Errorf("an unverified key during an outage = %v, want the Postgres error", err)
	}
}

// TestAuthenticateAsksPostgresOncePerKey: many requests with a key that is
// not cached yet cost one lookup.
func TestAuthenticateAsksPostgresOncePerKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, _ := testenv.NewPool(t)
	keys := NewKeys(pool, KeysConfig{})
	_, secret, err := keys.Create(ctx, "busy", []Role{RoleViewer}, cli)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := keys.Authenticate(ctx, secret); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if keys.CacheTTL() != DefaultCacheTTL {
		t.Errorf("CacheTTL = %v", keys.CacheTTL())
	}
	keys.mu.RLock()
	defer keys.mu.RUnlock()
	if len(keys.cache) != 1 {
		t.Errorf("cache has %d entries, want 1", len(keys.cache))
	}
}

// A flood of made-up keys is remembered apart from the verified keys: it
// never evicts a valid key (which keeps answering from memory), and a
// made-up key tried again within the TTL costs no lookup.
func TestMadeUpKeysNeverEvictValidOnes(t *testing.T) {
	ctx := t.Context()
	pool, _ := testenv.NewPool(t)
	keys := NewKeys(pool, KeysConfig{CacheTTL: time.Hour})
	_, secret, err := keys.Create(ctx, "gameserver", []Role{RoleServer}, audit.Attribution{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	madeUp := func(i int) string {
		s := fmt.Sprintf("%043d", i)
		return KeyPrefix + s
	}
	var wg sync.WaitGroup
	const flood = maxMisses + 500
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < flood; i += 8 {
				if _, err := keys.Authenticate(ctx, madeUp(i)); !errors.Is(err, ErrUnknownKey) {
					t.Errorf("made-up key %d: %v", i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	// Revoked behind the cache's back: a key still in memory keeps working
	// within the TTL, which shows the flood did not push it out.
	if _, err := pool.Exec(ctx, `UPDATE admin_keys SET revoked_at = now()`); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(ctx, secret); err != nil {
		t.Errorf("the valid key was evicted by made-up ones: %v", err)
	}
	// A made-up key remembered as unknown is not looked up again: even once
	// it exists, it stays unknown here until the TTL ends.
	last := madeUp(flood)
	if _, err := keys.Authenticate(ctx, last); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a made-up key: %v", err)
	}
	sum := sha256.Sum256([]byte(last))
	if _, err := pool.Exec(ctx, `INSERT INTO admin_keys (name, roles, key_hash, key_prefix, created_by) VALUES ('late', '{server}', $1, 'x', 'test')`, sum[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(ctx, last); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("a remembered miss was looked up again: %v", err)
	}
	keys.mu.RLock()
	misses := len(keys.misses)
	keys.mu.RUnlock()
	if misses > maxMisses {
		t.Errorf("%d misses remembered, at most %d", misses, maxMisses)
	}
}
