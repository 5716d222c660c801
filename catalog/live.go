package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// DefaultRefreshInterval is what Run polls at when given a non-positive
// interval.
const DefaultRefreshInterval = 5 * time.Second

// Live holds the snapshot this process serves. Requests call Current, which
// is a single atomic load; only Refresh and Set touch Postgres or change it,
// and the version only ever moves forward.
type Live struct {
	store *Store
	cur   atomic.Pointer[Snapshot]
	// refreshing lets one Refresh load at a time (a poll and, later, a
	// pub/sub notification may race) while waiters can still give up when
	// their context ends, which a mutex would not allow.
	refreshing chan struct{}
	// wake asks Run to refresh now (a pub/sub notification); one pending
	// request is enough, whatever the number of notifications.
	wake chan struct{}
}

// NewLive returns a Live with no snapshot; call Refresh or Run to load one.
func NewLive(store *Store) *Live {
	return &Live{store: store, refreshing: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
}

// Wake makes Run refresh at once rather than at its next poll. It never
// blocks; Notifier.Listen calls it for every catalog change announced.
func (l *Live) Wake() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Current returns the snapshot to serve, or nil before the first successful
// load.
func (l *Live) Current() *Snapshot { return l.cur.Load() }

// Set makes s current unless the current snapshot is the same or a newer
// version, so a slow load or a late call can never move the catalog back.
// It is meant for the snapshot Store.Publish just returned. Set(nil) does
// nothing.
func (l *Live) Set(s *Snapshot) {
	if s == nil {
		return
	}
	for {
		old := l.cur.Load()
		if old != nil && old.Version >= s.Version {
			return
		}
		if l.cur.CompareAndSwap(old, s) {
			return
		}
	}
}

// Refresh catches up with Postgres: it checks the live version number (the
// highest version whose live_at has passed) and loads that version only if
// it is newer than the current one. It returns the snapshot now current.
// Before anything is live it returns ErrNoCatalog; on any other failure the
// current snapshot stays in place and the error is returned. Refresh is the
// one way to catch up, whatever triggers it.
func (l *Live) Refresh(ctx context.Context) (*Snapshot, error) {
	s, _, err := l.refresh(ctx)
	return s, err
}

// refresh is Refresh that also returns how long until a scheduled version
// may go live (0 when none is pending).
func (l *Live) refresh(ctx context.Context) (*Snapshot, time.Duration, error) {
	select {
	case l.refreshing <- struct{}{}:
		defer func() { <-l.refreshing }()
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("catalog: refresh: %w", ctx.Err())
	}
	// Store errors already say what failed ("catalog: latest version: …").
	latest, next, err := l.store.liveState(ctx)
	if err != nil {
		return nil, 0, err
	}
	if latest == 0 {
		return nil, next, ErrNoCatalog
	}
	if cur := l.Current(); cur != nil && cur.Version >= latest {
		return cur, next, nil
	}
	s, err := l.store.Version(ctx, latest)
	if err != nil {
		return nil, 0, err
	}
	l.Set(s)
	return l.Current(), next, nil
}

// Run calls Refresh now, then every interval (DefaultRefreshInterval if
// interval <= 0), whenever Wake is called, and when the next scheduled
// version is due, until ctx ends. The poll is the fallback that keeps
// replicas in step when notifications are lost (Redis down); the timer makes
// a scheduled version go live on time without waiting for a poll.
//
// It logs with slog.Default: a new version at Info, and a failure at Error
// only when it differs from the previous one, so a database outage gives one
// line rather than one per poll.
func (l *Live) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultRefreshInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	due := time.NewTimer(time.Hour)
	due.Stop()
	defer due.Stop()
	var lastErr string
	var lastVersion int64
	if cur := l.Current(); cur != nil {
		lastVersion = cur.Version
	}
	for {
		s, next, err := l.refresh(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !(errors.Is(err, ErrNoCatalog) && next > 0):
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				level := slog.LevelError
				if errors.Is(err, ErrNoCatalog) {
					level = slog.LevelWarn // expected on a fresh install
				}
				slog.Log(ctx, level, "catalog refresh failed", "err", err)
			}
		case s != nil:
			if lastErr != "" {
				slog.Info("catalog refresh recovered", "version", s.Version)
				lastErr = ""
			}
			if s.Version != lastVersion {
				slog.Info("catalog version loaded", "version", s.Version, "published_at", s.PublishedAt)
				lastVersion = s.Version
			}
		}
		// Arm the timer only when the due time comes before the next
		// poll; otherwise the poll will see it.
		due.Stop()
		if next > 0 && next < interval {
			due.Reset(next)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-due.C:
		case <-l.wake:
		}
	}
}
