package main

import (
	"encoding/json"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
)

// The check baselines (issue 11, point 5) answer the game server's
// GET /v1/players/{id}/entitlements/{item} from a default fiber app in the
// bench process: the bare one sends a fixed answer, the other reads the
// same cached entry coinop's check reads (the same key, holding the same
// bytes, one HMGET of the same fields over a go-redis client with the
// settings of coinop serve's, see newRedis in cmd/coinop/serve.go) and
// answers from it. Neither authenticates, validates, times out, counts or
// logs: what coinop's check costs beyond them is what coinop adds.

// checkAnswer is the body both baselines send, the shape of coinop's.
type checkAnswer struct {
	PlayerID string `json:"player_id"`
	ItemID   string `json:"item_id"`
	Owned    bool   `json:"owned"`
	Quantity int64  `json:"quantity"`
}

// checkRoute is coinop's check route, which every check target is sent.
const checkRoute = "/v1/players/:player_id/entitlements/:item_id"

// startBareCheckFiber serves body on the check route.
func startBareCheckFiber(body []byte) (url string, stop func() error, err error) {
	return serveFiber(func(app *fiber.App) {
		app.Get(checkRoute, func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			return c.Send(body)
		})
	})
}

// benchRedisClient is a client with coinop serve's settings for redisURL.
func benchRedisClient(redisURL string) (redis.UniversalClient, error) {
	o, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, err
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 250 * time.Millisecond, WriteTimeout: 250 * time.Millisecond,
	}), nil
}

// startRedisCheckFiber answers the check route from one HMGET of
// <prefix>{<player>}:holdings, decoding the entry's data as coinop stores
// it ({"currencies":…,"items":…}).
func startRedisCheckFiber(rdb redis.UniversalClient, prefix string) (url string, stop func() error, err error) {
	return serveFiber(func(app *fiber.App) {
		app.Get(checkRoute, func(c *fiber.Ctx) error {
			player, item := c.Params("player_id"), c.Params("item_id")
			vals, err := rdb.HMGet(c.Context(), prefix+"{"+player+"}:holdings", "e", "v", "d").Result()
			if err != nil || len(vals) != 3 {
				return fiber.ErrServiceUnavailable
			}
			d, _ := vals[2].(string)
			var entry struct {
				Items map[string]int64 `json:"items"`
			}
			if err := json.Unmarshal([]byte(d), &entry); err != nil {
				return fiber.ErrServiceUnavailable
			}
			q := entry.Items[item]
			return c.JSON(checkAnswer{PlayerID: player, ItemID: item, Owned: q > 0, Quantity: q})
		})
	})
}

// serveFiber starts a default fiber app with routes on a loopback port.
func serveFiber(routes func(*fiber.App)) (url string, stop func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	routes(app)
	go func() { _ = app.Listener(ln) }() // returns when stop shuts the app down
	return "http://" + ln.Addr().String(), app.Shutdown, nil
}
