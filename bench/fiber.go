package main

import (
	"net"

	"github.com/gofiber/fiber/v2"
)

// startMinimalFiber serves body as GET /v1/catalog from a default fiber app
// on a loopback port: the floor for any fiber handler on this machine, with
// no middleware, authentication, ETag or per-request work. It returns the
// base URL and a function that stops it.
func startMinimalFiber(body []byte) (url string, stop func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/v1/catalog", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(body)
	})
	go func() { _ = app.Listener(ln) }() // returns when stop shuts the app down
	return "http://" + ln.Addr().String(), app.Shutdown, nil
}
