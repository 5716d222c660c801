package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
)

const localRequestID = "coinop.request_id"

// requestContext gives each request an id (the caller's X-Request-Id when it
// is sane, so traces join up across services) and a deadline.
func (s *Server) requestContext(c *fiber.Ctx) error {
	assignRequestID(c)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx)
	err := c.Next()
	// fasthttp does not skip a streamed body the handler left unread (a
	// 401 before the body is read, an unknown route): the next request on
	// the connection would be parsed from the middle of this body, which
	// is how requests are smuggled. Such a connection ends with this answer.
	// ContentLength is -1 for a chunked body, -2 for none.
	if n := c.Request().Header.ContentLength(); (n > 0 || n == -1) && c.Locals(localBodyRead) == nil {
		c.Context().SetConnectionClose()
	}
	return err
}

// assignRequestID gives the request its id and echoes it in X-Request-Id.
// errorHandler calls it too: fasthttp refuses some requests (a body over the
// server's limit) before any middleware runs, and those answers must carry an
// id like every other.
func assignRequestID(c *fiber.Ctx) string {
	if id := requestID(c); id != "" {
		return id
	}
	id := c.Get(fiber.HeaderXRequestID)
	if id == "" || len(id) > 128 || !isToken(id) {
		id = uuid.NewString()
	} else {
		id = string([]byte(id)) // fiber reuses the header buffer after the handler
	}
	c.Locals(localRequestID, id)
	c.Set(fiber.HeaderXRequestID, id)
	return id
}

// localBodyRead marks a request whose body limitBody has read whole.
const localBodyRead = "coinop.body_read"

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f {
			return false
		}
	}
	return true
}

// observe records latency per route and status, and logs one line per request.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		// Render now so the status below is the one the client gets.
		if herr := s.errorHandler(c, err); herr != nil {
			return herr
		}
	}
	status := c.Response().StatusCode()
	route := c.Route().Path
	if status == fiber.StatusNotFound && route == "/" && c.Path() != "/" {
		route = "unmatched"
	}
	elapsed := time.Since(start)
	s.metrics.observe(string([]byte(c.Method())), route, status, elapsed) // the histogram keeps label values; c.Method() aliases a reused buffer
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	if s.log.Enabled(c.UserContext(), level) {
		s.log.LogAttrs(c.UserContext(), level, "request",
			slog.String("request_id", requestID(c)),
			slog.String("method", c.Method()),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		)
	}
	return nil
}

// recoverPanics turns a panic into a 500 problem and logs the stack.
func (s *Server) recoverPanics(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic", slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.Next()
}

// limitBody reads the body of one route, refusing it above limit: at once
// when the declared Content-Length says so, otherwise after at most limit+1
// bytes of a chunked body. Every route that reads a body has it; the
// app-wide limit is the largest of all routes. (Bodies are streamed, see
// fiber.Config.StreamRequestBody, so nothing is read before this runs.)
func (s *Server) limitBody(limit int) fiber.Handler {
	tooLarge := newProblem(fiber.StatusRequestEntityTooLarge, codeRequestTooLarge,
		"The request body is larger than "+strconv.Itoa(limit)+" bytes.")
	return func(c *fiber.Ctx) error {
		req := c.Request()
		if n := req.Header.ContentLength(); n > limit {
			return tooLarge
		}
		if stream := req.BodyStream(); stream != nil {
			body, err := io.ReadAll(io.LimitReader(stream, int64(limit)+1))
			if err != nil {
				return invalid("The request body could not be read: " + err.Error())
			}
			if len(body) > limit {
				return tooLarge
			}
			req.SetBodyRaw(body)
		} else if len(c.Body()) > limit {
			return tooLarge
		}
		c.Locals(localBodyRead, true)
		return c.Next()
	}
}
