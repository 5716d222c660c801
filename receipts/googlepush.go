package receipts

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/awa/go-iap/playstore"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
)

// PushMessage is a decoded Google Play real-time developer notification,
// delivered by a Pub/Sub push subscription.
type PushMessage struct {
	MessageID    string // Pub/Sub message id: deduplicate on it
	Subscription string // projects/P/subscriptions/S
	PublishTime  time.Time
	Attributes   map[string]string
	EventTime    time.Time
	// Notification holds at most one of its kinds of notification; none
	// when Google sent a kind coinop does not know (Unknown names it).
	Notification DeveloperNotification
}

// DeveloperNotification is a real-time developer notification as Google
// documents it (developer.android.com/google/play/billing/rtdn-reference).
// It is coinop's own type rather than go-iap's DeveloperNotificationV2,
// whose eventTimeMillis is a string only (the documented type is a long,
// which protobuf JSON renders as a string but other encoders as a number)
// and which refuses nothing unknown but also keeps nothing of it. The
// kinds themselves are go-iap's types.
type DeveloperNotification struct {
	Version     string
	PackageName string
	// EventTimeMillis is the time of the event, milliseconds since the epoch.
	EventTimeMillis int64

	SubscriptionNotification        *playstore.SubscriptionNotification
	OneTimeProductNotification      *playstore.OneTimeProductNotification
	VoidedPurchaseNotification      *playstore.VoidedPurchaseNotification
	PendingRefundReviewNotification *playstore.PendingRefundReviewNotification
	TestNotification                *playstore.TestNotification

	// Unknown lists, sorted, the members of the notification that are no
	// field coinop knows: a kind of notification added after this code was
	// written is recorded and acknowledged, never refused.
	Unknown []string
}

// wireNotification is the JSON of a DeveloperNotification.
type wireNotification struct {
	Version                         string                                     `json:"version"`
	PackageName                     string                                     `json:"packageName"`
	EventTimeMillis                 json.RawMessage                            `json:"eventTimeMillis"`
	SubscriptionNotification        *playstore.SubscriptionNotification        `json:"subscriptionNotification"`
	OneTimeProductNotification      *playstore.OneTimeProductNotification      `json:"oneTimeProductNotification"`
	VoidedPurchaseNotification      *playstore.VoidedPurchaseNotification      `json:"voidedPurchaseNotification"`
	PendingRefundReviewNotification *playstore.PendingRefundReviewNotification `json:"pendingRefundReviewNotification"`
	TestNotification                *playstore.TestNotification                `json:"testNotification"`
}

var knownNotificationMembers = map[string]bool{
	"version": true, "packageName": true, "eventTimeMillis": true, "subscriptionNotification": true,
	"oneTimeProductNotification": true, "voidedPurchaseNotification": true,
	"pendingRefundReviewNotification": true, "testNotification": true,
}

// parseMillis reads a protobuf JSON int64: a JSON string of digits or a
// JSON number.
func parseMillis(raw json.RawMessage) (int64, error) {
	s := strings.TrimSpace(string(raw))
	if u, err := strconv.Unquote(s); err == nil && strings.HasPrefix(s, `"`) {
		s = u
	}
	return strconv.ParseInt(s, 10, 64)
}

// decodeDeveloperNotification decodes message.data.
func decodeDeveloperNotification(data []byte) (DeveloperNotification, error) {
	var w wireNotification
	if err := json.Unmarshal(data, &w); err != nil {
		return DeveloperNotification{}, invalid(ReasonFormat, "developer notification: %v", err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return DeveloperNotification{}, invalid(ReasonFormat, "developer notification: %v", err)
	}
	n := DeveloperNotification{
		Version: w.Version, PackageName: w.PackageName,
		SubscriptionNotification:        w.SubscriptionNotification,
		OneTimeProductNotification:      w.OneTimeProductNotification,
		VoidedPurchaseNotification:      w.VoidedPurchaseNotification,
		PendingRefundReviewNotification: w.PendingRefundReviewNotification,
		TestNotification:                w.TestNotification,
	}
	for k := range members {
		if !knownNotificationMembers[k] {
			n.Unknown = append(n.Unknown, k)
		}
	}
	sort.Strings(n.Unknown)
	if n.PackageName == "" || n.Version == "" {
		return n, invalid(ReasonFormat, "developer notification without packageName or version")
	}
	ms, err := parseMillis(w.EventTimeMillis)
	if err != nil || ms <= 0 {
		return n, invalid(ReasonFormat, "eventTimeMillis %s", truncateRunes(string(w.EventTimeMillis), 40))
	}
	n.EventTimeMillis = ms
	return n, nil
}

func truncateRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// maxPushBody bounds a Pub/Sub push request body; notifications are < 1 KB.
const maxPushBody = 64 << 10

type pushEnvelope struct {
	Message *struct {
		Data         string            `json:"data"`
		MessageID    string            `json:"messageId"`
		MessageIDAlt string            `json:"message_id"`
		PublishTime  string            `json:"publishTime"`
		PublishAlt   string            `json:"publish_time"`
		Attributes   map[string]string `json:"attributes"`
		OrderingKey  string            `json:"orderingKey"`
	} `json:"message"`
	Subscription    string `json:"subscription"`
	DeliveryAttempt int    `json:"deliveryAttempt"`
}

// DecodePushEnvelope decodes a Pub/Sub push body whose message.data is a
// Google Play developer notification. It checks shapes only: the caller
// authenticates the push (PushAuthenticator) and compares the package name
// (GooglePlay.DecodePush does). Errors: *InvalidError with ReasonFormat.
func DecodePushEnvelope(body []byte) (*PushMessage, error) {
	if len(body) > maxPushBody {
		return nil, invalid(ReasonFormat, "push body longer than %d bytes", maxPushBody)
	}
	var env pushEnvelope
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&env); err != nil {
		return nil, invalid(ReasonFormat, "push envelope: %v", err)
	}
	if d.More() {
		return nil, invalid(ReasonFormat, "push envelope: trailing data")
	}
	m := env.Message
	if m == nil {
		return nil, invalid(ReasonFormat, "push envelope has no message")
	}
	out := &PushMessage{
		MessageID:    firstNonEmpty(m.MessageID, m.MessageIDAlt),
		Subscription: env.Subscription,
		Attributes:   m.Attributes,
	}
	if out.MessageID == "" {
		return nil, invalid(ReasonFormat, "push message has no messageId")
	}
	if pt := firstNonEmpty(m.PublishTime, m.PublishAlt); pt != "" {
		t, err := time.Parse(time.RFC3339Nano, pt)
		if err != nil {
			return nil, invalid(ReasonFormat, "publishTime %q", pt)
		}
		out.PublishTime = t.UTC()
	}
	if m.Data == "" {
		return nil, invalid(ReasonFormat, "push message has no data")
	}
	data, err := base64.StdEncoding.DecodeString(m.Data)
	if err != nil {
		return nil, invalid(ReasonFormat, "message.data is not base64")
	}
	n, err := decodeDeveloperNotification(data)
	if err != nil {
		return nil, err
	}
	out.Notification = n
	out.EventTime = msTime(n.EventTimeMillis)
	kinds := 0
	if s := n.SubscriptionNotification; s != nil {
		kinds++
		// subscriptionId is not required: the subscriptions v2 API looks a
		// purchase up by its token alone, and notifications without it
		// have been seen.
		if s.PurchaseToken == "" || s.NotificationType == 0 {
			return nil, invalid(ReasonFormat, "subscriptionNotification without purchaseToken or notificationType")
		}
	}
	if o := n.OneTimeProductNotification; o != nil {
		kinds++
		if o.PurchaseToken == "" || o.SKU == "" || o.NotificationType == 0 {
			return nil, invalid(ReasonFormat, "oneTimeProductNotification without purchaseToken, sku or notificationType")
		}
	}
	if v := n.VoidedPurchaseNotification; v != nil {
		kinds++
		if v.PurchaseToken == "" {
			return nil, invalid(ReasonFormat, "voidedPurchaseNotification without purchaseToken")
		}
	}
	if n.PendingRefundReviewNotification != nil {
		kinds++
	}
	if n.TestNotification != nil {
		kinds++
	}
	// No known kind is a kind coinop does not know yet: recorded, no
	// effect. Two known kinds in one notification is not something Google
	// sends.
	if kinds > 1 {
		return nil, invalid(ReasonFormat, "developer notification holds %d kinds of notification, want 1", kinds)
	}
	return out, nil
}

// DecodePush is DecodePushEnvelope plus the package name check
// (ReasonBundle).
func (g *GooglePlay) DecodePush(body []byte) (*PushMessage, error) {
	m, err := DecodePushEnvelope(body)
	if err != nil {
		return nil, err
	}
	if m.Notification.PackageName != g.cfg.PackageName {
		return nil, invalid(ReasonBundle, "notification for package %q, want %q", m.Notification.PackageName, g.cfg.PackageName)
	}
	return m, nil
}

// GoogleCertsURL serves the keys Google signs its OIDC tokens with.
const GoogleCertsURL = "https://www.googleapis.com/oauth2/v3/certs"

// ErrPushUnauthorized is returned (wrapped) for a push whose bearer token is
// missing or not acceptable. Answer 401/403; Pub/Sub retries.
var ErrPushUnauthorized = errors.New("receipts: push not authenticated")

// PushAuthConfig configures PushAuthenticator.
type PushAuthConfig struct {
	// Audience the push subscription was configured with (its push
	// endpoint URL by default).
	Audience string
	// ServiceAccountEmail the push subscription authenticates as.
	ServiceAccountEmail string
	// JWKSURL defaults to GoogleCertsURL; tests serve their own.
	JWKSURL string
	// HTTPClient fetches the JWKS; default: 10 s timeout.
	HTTPClient *http.Client
	// Now defaults to time.Now.
	Now func() time.Time
}

// PushAuthenticator checks the OIDC token Pub/Sub puts in a push request's
// Authorization header. Safe for concurrent use; keys are cached.
type PushAuthenticator struct {
	cfg PushAuthConfig

	mu        sync.Mutex
	keys      map[string]*rsa.PublicKey
	expires   time.Time
	lastFetch time.Time
	lastErr   error
	// fetching makes concurrent pushes share one JWKS fetch instead of
	// queueing behind a lock held across the network call.
	fetching singleflight.Group
}

// jwksRetry is how long after a failed JWKS fetch the next push may try
// again; in between, pushes fail fast (or use keys still known) rather than
// each waiting on a fetch that just failed.
const jwksRetry = 5 * time.Second

// NewPushAuthenticator checks cfg and returns an authenticator.
func NewPushAuthenticator(cfg PushAuthConfig) (*PushAuthenticator, error) {
	if cfg.Audience == "" || cfg.ServiceAccountEmail == "" {
		return nil, errors.New("receipts: push auth: Audience and ServiceAccountEmail are required")
	}
	if cfg.JWKSURL == "" {
		cfg.JWKSURL = GoogleCertsURL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &PushAuthenticator{cfg: cfg}, nil
}

var googleIssuers = map[string]bool{"accounts.google.com": true, "https://accounts.google.com": true}

// Authenticate checks an Authorization header value ("Bearer <JWT>"): RS256
// signed by a key from the JWKS, issuer Google, the configured audience and
// service account email with email_verified, not expired. Errors:
// ErrPushUnauthorized (wrapped), or ErrStoreUnavailable when the keys cannot
// be fetched.
func (a *PushAuthenticator) Authenticate(ctx context.Context, authorization string) error {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > 16<<10 {
		return fmt.Errorf("%w: no bearer token", ErrPushUnauthorized)
	}
	var fetchErr error
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(strings.TrimSpace(tok), claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, err := a.key(ctx, kid)
		if err != nil {
			fetchErr = err
		}
		return k, err
	},
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithAudience(a.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(a.cfg.Now),
		jwt.WithLeeway(30*time.Second),
	)
	if fetchErr != nil && errors.Is(fetchErr, ErrStoreUnavailable) {
		return fetchErr
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPushUnauthorized, err)
	}
	if iss, _ := claims["iss"].(string); !googleIssuers[iss] {
		return fmt.Errorf("%w: issuer %q", ErrPushUnauthorized, iss)
	}
	if email, _ := claims["email"].(string); email != a.cfg.ServiceAccountEmail {
		return fmt.Errorf("%w: email %q is not the push service account", ErrPushUnauthorized, email)
	}
	if v, _ := claims["email_verified"].(bool); !v {
		return fmt.Errorf("%w: email not verified", ErrPushUnauthorized)
	}
	return nil
}

// key returns the verification key kid, refreshing the JWKS when it has
// expired or does not know kid (at most once a minute for unknown kids, and
// at most once per jwksRetry after a failed fetch). Concurrent callers share
// one fetch; no lock is held while it runs.
func (a *PushAuthenticator) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	a.mu.Lock()
	now := a.cfg.Now()
	k, known := a.keys[kid]
	fresh := a.keys != nil && now.Before(a.expires)
	due := !fresh || now.Sub(a.lastFetch) >= time.Minute
	backingOff := a.lastErr != nil && now.Sub(a.lastFetch) < jwksRetry
	lastErr := a.lastErr
	a.mu.Unlock()
	switch {
	case known && fresh:
		return k, nil
	case !due:
		return nil, fmt.Errorf("%w: unknown key id %q", ErrPushUnauthorized, kid)
	case backingOff && known:
		return k, nil // keep using a known key while the JWKS is unreachable
	case backingOff:
		return nil, lastErr
	}
	_, err, _ := a.fetching.Do("jwks", func() (any, error) {
		// A fetch that finished between our look and this call counts:
		// its result stands until it is due again.
		a.mu.Lock()
		done := !a.lastFetch.Before(now) || (a.lastErr != nil && now.Sub(a.lastFetch) < jwksRetry) ||
			(a.lastErr == nil && a.keys != nil && now.Before(a.expires) && now.Sub(a.lastFetch) < time.Minute)
		lastErr := a.lastErr
		a.mu.Unlock()
		if done {
			return nil, lastErr
		}
		// The fetch outlives any one push's cancellation: others wait on it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return nil, a.fetch(fctx, now)
	})
	a.mu.Lock()
	k, ok := a.keys[kid]
	a.mu.Unlock()
	switch {
	case ok && (err == nil || known):
		return k, nil
	case err != nil:
		return nil, err
	}
	return nil, fmt.Errorf("%w: unknown key id %q", ErrPushUnauthorized, kid)
}

// fetch downloads the JWKS and, under the lock, installs it or records
// the failure.
func (a *PushAuthenticator) fetch(ctx context.Context, now time.Time) error {
	keys, maxAge, err := a.download(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastFetch, a.lastErr = now, err
	if err != nil {
		return err
	}
	a.keys = keys
	a.expires = now.Add(maxAge)
	return nil
}

func (a *PushAuthenticator) download(ctx context.Context) (map[string]*rsa.PublicKey, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.cfg.JWKSURL, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("receipts: push auth: %w", err)
	}
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, unavailable("fetching JWKS: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, unavailable("fetching JWKS: HTTP %d", resp.StatusCode)
	}
	var set struct {
		Keys []struct {
			Kty, Kid, Alg, Use, N, E string
		} `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, 0, unavailable("decoding JWKS: %v", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" || (k.Alg != "" && k.Alg != "RS256") || (k.Use != "" && k.Use != "sig") {
			continue
		}
		nb, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.N, "="))
		eb, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.E, "="))
		if err1 != nil || err2 != nil || len(eb) == 0 || len(eb) > 4 {
			continue
		}
		n := new(big.Int).SetBytes(nb)
		e := new(big.Int).SetBytes(eb)
		if n.BitLen() < 2048 || e.Int64() < 3 {
			continue
		}
		keys[k.Kid] = &rsa.PublicKey{N: n, E: int(e.Int64())}
	}
	if len(keys) == 0 {
		return nil, 0, unavailable("JWKS holds no usable RSA key")
	}
	return keys, cacheMaxAge(resp.Header.Get("Cache-Control")), nil
}

func cacheMaxAge(cc string) time.Duration {
	for _, part := range strings.Split(cc, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "max-age="); ok {
			if s, err := strconv.Atoi(v); err == nil {
				return min(max(time.Duration(s)*time.Second, time.Minute), 24*time.Hour)
			}
		}
	}
	return time.Hour
}
