package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// RateLimits caps requests on the player API per player and per client IP.
// A zero Limit means no cap of that kind.
type RateLimits struct {
	Player redis_rate.Limit
	IP     redis_rate.Limit
	// AuthFailures caps refused credentials per client IP on every
	// authenticated route (player, admin, game server): past it the client
	// gets 429 before its token is even looked at, so guessing admin or
	// game-server tokens, or flooding the key lookup, is slow.
	AuthFailures redis_rate.Limit
}

// DefaultRateLimits is COINOP_RATE_LIMIT's default: generous for a game
// client, tight enough to stop a runaway loop or a scripted abuser.
const DefaultRateLimits = "player=20/s,ip=300/s,authfail=30/m"

// ParseRateLimits reads "player=20/s,ip=300/s,authfail=30/m" (rates per s,
// m or h; burst equals the rate) or "off".
func ParseRateLimits(s string) (RateLimits, error) {
	var rl RateLimits
	s = strings.TrimSpace(s)
	if s == "off" || s == "" {
		return rl, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, spec, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return rl, fmt.Errorf("rate limit %q: want name=N/s", part)
		}
		nStr, unit, ok := strings.Cut(spec, "/")
		n, err := strconv.Atoi(nStr)
		if !ok || err != nil || n < 1 {
			return rl, fmt.Errorf("rate limit %q: want a positive count like 20/s", part)
		}
		var period time.Duration
		switch unit {
		case "s":
			period = time.Second
		case "m":
			period = time.Minute
		case "h":
			period = time.Hour
		default:
			return rl, fmt.Errorf("rate limit %q: unit must be s, m or h", part)
		}
		limit := redis_rate.Limit{Rate: n, Burst: n, Period: period}
		switch name {
		case "player":
			rl.Player = limit
		case "ip":
			rl.IP = limit
		case "authfail":
			rl.AuthFailures = limit
		default:
			return rl, fmt.Errorf("rate limit %q: name must be player, ip or authfail", part)
		}
	}
	return rl, nil
}

// rateLimiter applies RateLimits with GCRA in Redis (redis_rate), so the
// limit holds across replicas. When Redis fails, requests are let through:
// an outage of the cache must not take the API down with it.
type rateLimiter struct {
	limits  RateLimits
	limiter *redis_rate.Limiter
	prefix  string
	breaker *gobreaker.CircuitBreaker[*redis_rate.Result]
	trusted []netip.Prefix

	// blocked holds, per client IP, until when this replica refuses its
	// credentials unseen (set when the shared failure budget ran out).
	blockedMu sync.Mutex
	blocked   map[string]time.Time
}

// maxBlocked bounds the blocked-IP table.
const maxBlocked = 10_000

var errAuthRateLimited = newProblem(fiber.StatusTooManyRequests, codeRateLimited,
	"Too many refused credentials from this address; retry after the time in Retry-After.")

// authGate refuses a client that ran out of its failure budget before its
// credentials cost anything to check.
func (r *rateLimiter) authGate(c *fiber.Ctx) error {
	if r == nil || r.limits.AuthFailures.IsZero() {
		return nil
	}
	ip := r.clientIP(c)
	r.blockedMu.Lock()
	until, ok := r.blocked[ip]
	r.blockedMu.Unlock()
	if ok && time.Now().Before(until) {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(time.Until(until).Seconds()))))
		return errAuthRateLimited
	}
	return nil
}

// authFailed counts one refused credential against the client's budget and
// returns refusal, or 429 once the budget is spent.
func (r *rateLimiter) authFailed(c *fiber.Ctx, refusal error) error {
	if r == nil || r.limits.AuthFailures.IsZero() {
		return refusal
	}
	ip := r.clientIP(c)
	res, err := r.breaker.Execute(func() (*redis_rate.Result, error) {
		return r.limiter.Allow(c.UserContext(), r.prefix+"rl:authfail:"+ip, r.limits.AuthFailures)
	})
	if err != nil || res.Allowed > 0 {
		return refusal // Redis trouble fails open, as for the other limits
	}
	until := time.Now().Add(res.RetryAfter)
	r.blockedMu.Lock()
	if r.blocked == nil || len(r.blocked) >= maxBlocked {
		r.blocked = map[string]time.Time{}
	}
	r.blocked[ip] = until
	r.blockedMu.Unlock()
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(res.RetryAfter.Seconds()))))
	return errAuthRateLimited
}

func newRateLimiter(rdb redis.UniversalClient, prefix string, limits RateLimits, trustedProxies []string) *rateLimiter {
	if rdb == nil || (limits.Player.IsZero() && limits.IP.IsZero() && limits.AuthFailures.IsZero()) {
		return nil
	}
	return &rateLimiter{
		limits: limits, limiter: redis_rate.NewLimiter(ownKeys{rdb}), prefix: prefix, trusted: parsePrefixes(trustedProxies),
		breaker: gobreaker.NewCircuitBreaker[*redis_rate.Result](gobreaker.Settings{
			Name: "rate-limit", Timeout: 2 * time.Second,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
		}),
	}
}

// redis_rate puts its constant "rate:" before every key, which would take
// the limiter's keys outside COINOP_REDIS_PREFIX: a Redis ACL limited to the
// prefix would then refuse them and the limiter would fail open. ownKeys
// hands redis_rate's calls to Redis with that constant taken off again, so
// the keys are exactly <prefix>rl:…; it wraps only the calls redis_rate
// makes with keys.
type ownKeys struct{ redis.UniversalClient }

const redisRatePrefix = "rate:"

func stripRatePrefix(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, redisRatePrefix)
	}
	return out
}

func (o ownKeys) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return o.UniversalClient.Eval(ctx, script, stripRatePrefix(keys), args...)
}

func (o ownKeys) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return o.UniversalClient.EvalSha(ctx, sha1, stripRatePrefix(keys), args...)
}

func (o ownKeys) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return o.UniversalClient.EvalRO(ctx, script, stripRatePrefix(keys), args...)
}

func (o ownKeys) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return o.UniversalClient.EvalShaRO(ctx, sha1, stripRatePrefix(keys), args...)
}

func (o ownKeys) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return o.UniversalClient.Del(ctx, stripRatePrefix(keys)...)
}

var errRateLimited = newProblem(fiber.StatusTooManyRequests, codeRateLimited, "Too many requests; retry after the time in Retry-After.")

// check runs after authentication, so the player limit keys on the token's
// player and the IP limit on the connection's address.
func (r *rateLimiter) check(c *fiber.Ctx) error {
	if r == nil {
		return c.Next()
	}
	for _, k := range []struct {
		key   string
		limit redis_rate.Limit
	}{
		{r.prefix + "rl:ip:" + r.clientIP(c), r.limits.IP},
		{r.prefix + "rl:player:" + playerID(c), r.limits.Player},
	} {
		if k.limit.IsZero() || (k.key == r.prefix+"rl:player:" && playerID(c) == "") {
			continue
		}
		res, err := r.breaker.Execute(func() (*redis_rate.Result, error) {
			return r.limiter.Allow(c.UserContext(), k.key, k.limit)
		})
		if err != nil {
			if !errors.Is(err, gobreaker.ErrOpenState) {
				c.Locals("coinop.rate_limit_error", err.Error())
			}
			continue
		}
		if res.Allowed == 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(res.RetryAfter.Seconds()))))
			return errRateLimited
		}
	}
	return c.Next()
}

// parsePrefixes reads trusted proxies given as IPs or CIDRs; entries that
// are neither are skipped (fiber's own proxy check takes the same list).
func parsePrefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return out
}

func (r *rateLimiter) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the address the per-IP limit keys on. Behind trusted proxies
// it is the nearest untrusted hop of X-Forwarded-For, read from the right:
// each proxy appends the address it received the request from, so only the
// entries our own proxies appended can be believed, and everything to the
// left of the first untrusted one is whatever the client chose to send.
// (fiber's c.IP() takes the leftmost entry, which the client controls.)
func (r *rateLimiter) clientIP(c *fiber.Ctx) string {
	remote, ok := netip.AddrFromSlice(c.Context().RemoteIP())
	if !ok {
		return c.Context().RemoteIP().String()
	}
	remote = remote.Unmap()
	if !r.isTrusted(remote) {
		return remote.String()
	}
	var hops []string
	for _, h := range c.Request().Header.PeekAll(fiber.HeaderXForwardedFor) {
		hops = append(hops, strings.Split(string(h), ",")...)
	}
	client := remote
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: nothing left of it can be believed
		}
		client = a.Unmap()
		if !r.isTrusted(client) {
			break
		}
	}
	return client.String()
}
