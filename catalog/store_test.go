package catalog

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newStore returns a Store on a fresh migrated database, and that database's
// URL so a test can open a second, independent pool (another replica).
func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	pool, url := testenv.NewPool(t)
	return NewStore(pool), url
}

// otherReplica returns a Store on its own pool to the same database, as
// another process would have.
func otherReplica(t *testing.T, url string) *Store {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return NewStore(pool)
}

func publish(t *testing.T, s *Store, c *Catalog, note string) *Snapshot {
	t.Helper()
	snap, err := s.Publish(t.Context(), c, note, "designer@example.com")
	if err != nil {
		t.Fatalf("Publish(%q): %v", note, err)
	}
	return snap
}

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)

	t.Run("an empty database has no catalog", func(t *testing.T) {
		if _, err := store.Latest(ctx); !errors.Is(err, ErrNoCatalog) {
			t.Errorf("Latest = %v, want ErrNoCatalog", err)
		}
		if _, err := store.LatestVersion(ctx); !errors.Is(err, ErrNoCatalog) {
			t.Errorf("LatestVersion = %v, want ErrNoCatalog", err)
		}
		if list, err := store.Versions(ctx, 10); err != nil || len(list) != 0 {
			t.Errorf("Versions = %v, %v; want empty", list, err)
		}
	})

	v1 := testCatalog()
	v2 := testCatalog()
	v2.Items[0].Prices[0].Amount = 450 // a sale on swords
	v2.Items = append(v2.Items, Item{ID: "bow", Name: "Bow", Kind: KindDurable, Prices: []Price{{"gold", 800}},
		AvailableFrom: ptr(date(2026, 6, 1))})

	before := time.Now()
	s1 := publish(t, store, v1, "launch")
	s2 := publish(t, store, v2, "sword sale")

	t.Run("publish returns the new version's snapshot", func(t *testing.T) {
		if s1.Version != 1 || s2.Version != 2 {
			t.Fatalf("versions = %d, %d; want 1, 2", s1.Version, s2.Version)
		}
		if s1.PublishedAt.Before(before.Add(-time.Minute)) || s1.PublishedAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("PublishedAt = %v, want about now", s1.PublishedAt)
		}
		if !reflect.DeepEqual(s2.Catalog, v2) {
			t.Errorf("published catalog differs from the input:\n got %+v\nwant %+v", s2.Catalog, v2)
		}
	})

	t.Run("latest is the second version with its content", func(t *testing.T) {
		latest, err := store.Latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if latest.Version != 2 || latest.ETag() != `"catalog-2"` {
			t.Errorf("Latest = version %d, ETag %s; want 2", latest.Version, latest.ETag())
		}
		if !reflect.DeepEqual(latest.Catalog, v2) {
			t.Errorf("Latest catalog:\n got %+v\nwant %+v", latest.Catalog, v2)
		}
		if sword, _ := latest.Item("sword"); sword.Prices[0].Amount != 450 {
			t.Errorf("sword price = %d, want 450", sword.Prices[0].Amount)
		}
		if bow, ok := latest.Item("bow"); !ok || !bow.AvailableFrom.Equal(date(2026, 6, 1)) {
			t.Errorf("bow = %+v, %v", bow, ok)
		}
		// Postgres stores jsonb in its own key order and spacing; the
		// replica that published and the ones that load it must still
		// serve the same bytes under the same ETag.
		if string(latest.JSON()) != string(s2.JSON()) {
			t.Errorf("loaded JSON differs from published JSON:\n%s\n%s", latest.JSON(), s2.JSON())
		}
		if !latest.PublishedAt.Equal(s2.PublishedAt) {
			t.Errorf("PublishedAt = %v, want %v", latest.PublishedAt, s2.PublishedAt)
		}
	})

	t.Run("an older version stays readable", func(t *testing.T) {
		got, err := store.Version(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != 1 || !reflect.DeepEqual(got.Catalog, v1) {
			t.Errorf("Version(1) = %d %+v, want the first catalog", got.Version, got.Catalog)
		}
	})

	t.Run("a missing version is ErrVersionNotFound", func(t *testing.T) {
		for _, v := range []int64{99, 0, -1} {
			if _, err := store.Version(ctx, v); !errors.Is(err, ErrVersionNotFound) {
				t.Errorf("Version(%d) = %v, want ErrVersionNotFound", v, err)
			}
		}
	})

	t.Run("latest version is the highest number", func(t *testing.T) {
		if v, err := store.LatestVersion(ctx); err != nil || v != 2 {
			t.Errorf("LatestVersion = %d, %v; want 2", v, err)
		}
	})

	t.Run("versions are listed newest first with note and author", func(t *testing.T) {
		list, err := store.Versions(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].Version != 2 || list[1].Version != 1 {
			t.Fatalf("Versions = %+v, want 2 then 1", list)
		}
		if list[0].Note != "sword sale" || list[1].Note != "launch" || list[0].CreatedBy != "designer@example.com" {
			t.Errorf("Versions = %+v", list)
		}
		if !list[0].CreatedAt.Equal(s2.PublishedAt) {
			t.Errorf("CreatedAt = %v, want %v", list[0].CreatedAt, s2.PublishedAt)
		}
		if short, err := store.Versions(ctx, 1); err != nil || len(short) != 1 || short[0].Version != 2 {
			t.Errorf("Versions(limit 1) = %+v, %v", short, err)
		}
	})
}

func TestPublishRejectsInvalidCatalogs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)

	bad := testCatalog()
	bad.Items[0].Prices[1].Currency = "gld"
	bad.Bundles[0].Contents.Items["sword"] = 2
	snap, err := store.Publish(ctx, bad, "broken", "designer@example.com")
	var ve *ValidationError
	if snap != nil || !errors.As(err, &ve) {
		t.Fatalf("Publish = %v, %v; want nil and *ValidationError", snap, err)
	}
	if len(ve.Problems) != 2 || ve.Problems[0].Path != "items[0].prices[1].currency" {
		t.Errorf("problems = %q", ve.Problems)
	}
	if _, err := store.LatestVersion(ctx); !errors.Is(err, ErrNoCatalog) {
		t.Errorf("after a rejected publish LatestVersion = %v, want ErrNoCatalog", err)
	}
}

func TestPublishedVersionsAreImmutable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	publish(t, store, testCatalog(), "launch")
	// The schema's trigger is what guarantees a served version never
	// changes; the ETag scheme relies on it.
	if _, err := store.db.Exec(ctx, `UPDATE catalog_versions SET note = 'edited'`); err == nil {
		t.Error("UPDATE of a published version succeeded")
	}
	if _, err := store.db.Exec(ctx, `DELETE FROM catalog_versions`); err == nil {
		t.Error("DELETE of a published version succeeded")
	}
}

func TestLive(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, url := newStore(t)
	elsewhere := otherReplica(t, url)
	live := NewLive(store)

	if live.Current() != nil {
		t.Fatal("Current before any load is not nil")
	}
	if _, err := live.Refresh(ctx); !errors.Is(err, ErrNoCatalog) {
		t.Fatalf("Refresh with nothing published = %v, want ErrNoCatalog", err)
	}

	t.Run("refresh picks up a publish made by another replica", func(t *testing.T) {
		publish(t, elsewhere, testCatalog(), "v1")
		got, err := live.Refresh(ctx)
		if err != nil || got.Version != 1 || live.Current() != got {
			t.Fatalf("Refresh = %v, %v; want version 1 and Current to match", got, err)
		}
		next := testCatalog()
		next.Currencies[0].Name = "Golden Coins"
		publish(t, elsewhere, next, "v2")
		got, err = live.Refresh(ctx)
		if err != nil || got.Version != 2 {
			t.Fatalf("Refresh = %v, %v; want version 2", got, err)
		}
		if gold, _ := live.Current().Currency("gold"); gold.Name != "Golden Coins" {
			t.Errorf("gold is named %q after refresh", gold.Name)
		}
	})

	t.Run("refresh keeps the same snapshot when nothing changed", func(t *testing.T) {
		cur := live.Current()
		got, err := live.Refresh(ctx)
		if err != nil || got != cur {
			t.Errorf("Refresh = %p, %v; want the current snapshot %p unchanged", got, err, cur)
		}
	})

	t.Run("set never moves backwards", func(t *testing.T) {
		v3 := publish(t, store, testCatalog(), "v3")
		old, err := store.Version(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		live.Set(v3)
		live.Set(old)
		live.Set(nil)
		if got := live.Current(); got != v3 {
			t.Fatalf("Current = version %d, want 3", got.Version)
		}
		// Setting a different snapshot of the same version keeps the first.
		again, err := store.Version(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		live.Set(again)
		if live.Current() != v3 {
			t.Error("Set replaced a snapshot with another of the same version")
		}
		if got, err := live.Refresh(ctx); err != nil || got != v3 {
			t.Errorf("Refresh after Set = %v, %v; want the set snapshot", got, err)
		}
	})

	t.Run("concurrent refreshes agree", func(t *testing.T) {
		publish(t, elsewhere, testCatalog(), "v4")
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				s, err := live.Refresh(ctx)
				if err == nil && s.Version != 4 {
					err = errors.New("refresh returned an old version")
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})
}

func TestLiveRunPollsUntilCanceled(t *testing.T) {
	t.Parallel()
	store, url := newStore(t)
	elsewhere := otherReplica(t, url)
	live := NewLive(store)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		live.Run(ctx, 10*time.Millisecond)
	}()

	publish(t, elsewhere, testCatalog(), "v1")
	waitForVersion(t, live, 1)
	publish(t, elsewhere, testCatalog(), "v2")
	waitForVersion(t, live, 2)

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was canceled")
	}
}

func waitForVersion(t *testing.T, live *Live, v int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s := live.Current(); s != nil && s.Version == v {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("Run did not load version %d within 10s", v)
}

func TestRefreshGivesUpWhenContextEnds(t *testing.T) {
	t.Parallel()
	live := NewLive(nil)          // never reaches the store
	live.refreshing <- struct{}{} // another refresh is in progress
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := live.Refresh(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Refresh = %v, want context.DeadlineExceeded", err)
	}
}

// TestLiveSetConcurrently needs no database: whatever order concurrent Sets
// land in, the highest version wins.
func TestLiveSetConcurrently(t *testing.T) {
	t.Parallel()
	live := NewLive(nil)
	snaps := make([]*Snapshot, 50)
	for i := range snaps {
		s, err := NewSnapshot(int64(i+1), time.Now(), testCatalog())
		if err != nil {
			t.Fatal(err)
		}
		snaps[i] = s
	}
	var wg sync.WaitGroup
	for i := len(snaps) - 1; i >= 0; i-- {
		wg.Go(func() {
			live.Set(snaps[i])
			if cur := live.Current(); cur == nil || cur.Version < snaps[i].Version {
				t.Errorf("after Set(%d) Current is %v", snaps[i].Version, cur)
			}
		})
	}
	wg.Wait()
	if got := live.Current().Version; got != 50 {
		t.Errorf("Current = version %d, want 50", got)
	}
}
