package server

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
)

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

type dependencyStatus struct {
	OK        bool    `json:"ok"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// schemaStatus says whether the database schema is migrated for this binary.
type schemaStatus struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// readyz reports whether this replica should get traffic. Postgres is the
// system of record, so without it the replica is not ready; Redis is only a
// cache, so without it the replica is ready but degraded.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
	defer cancel()
	pg := probe(ctx, func(ctx context.Context) error { return s.db.Ping(ctx) })
	rd := probe(ctx, func(ctx context.Context) error { return s.redis.Ping(ctx).Err() })
	status, code := "ok", fiber.StatusOK
	schema := schemaStatus{OK: true}
	if msg := s.schemaProblem.Load(); msg != nil {
		schema = schemaStatus{OK: false, Error: *msg}
	}
	switch {
	case !pg.OK, !schema.OK:
		status, code = "unavailable", fiber.StatusServiceUnavailable
	case !rd.OK:
		status = "degraded"
	case s.live.Current() == nil:
		status = "degraded"
	}
	checks := fiber.Map{"postgres": pg, "redis": rd, "schema": schema}
	if s.cache != nil {
		breaker := "closed"
		if s.cache.BreakerOpen() {
			breaker, status = "open", "degraded"
		}
		checks["cache"] = fiber.Map{"breaker": breaker}
	}
	return c.Status(code).JSON(fiber.Map{
		"status":          status,
		"catalog_version": catalogVersion(s),
		"checks":          checks,
	})
}

func catalogVersion(s *Server) int64 {
	if snap := s.live.Current(); snap != nil {
		return snap.Version
	}
	return 0
}

func probe(ctx context.Context, ping func(context.Context) error) dependencyStatus {
	start := time.Now()
	err := ping(ctx)
	st := dependencyStatus{OK: err == nil, LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		st.Error = err.Error()
	}
	return st
}
