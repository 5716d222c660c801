package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/receipts"
	"github.com/coinop/coinop/receipts/fakestore"
	"github.com/coinop/coinop/server"
)

// storeSetup is what the store settings build: verifiers and testers for
// the server, the clawback policy for the store worker.
type storeSetup struct {
	stores  server.Stores
	testers []string
	policy  entitlements.ClawbackPolicy
	// consumption answers Apple's consumption requests.
	consumption bool
	// voided lists Google's voided purchases for the sweep (nil: Google is
	// not swept).
	voided receipts.VoidedPurchasesAPI
}

// Names accepted in COINOP_STORES.
const (
	storeApple  = "apple"
	storeGoogle = "google"
	storeFake   = "fake"
)

// enabledStores parses COINOP_STORES.
func enabledStores(cfg *config) (map[string]bool, error) {
	on := map[string]bool{}
	for _, s := range strings.Split(cfg.str("COINOP_STORES"), ",") {
		switch s = strings.TrimSpace(s); s {
		case "":
		case storeApple, storeGoogle, storeFake:
			on[s] = true
		default:
			return nil, fmt.Errorf("COINOP_STORES: unknown store %q (want apple, google or fake)", s)
		}
	}
	if on[storeApple] && on[storeFake] {
		return nil, errors.New("COINOP_STORES: fake replaces apple's trusted roots with a local test CA; enable one of them, not both")
	}
	return on, nil
}

// buildStores reads the store settings and builds the verifiers. Nothing is
// contacted yet; files (keys, certificates, the fake CA) are read here so
// that a mistake stops serve at start-up.
func buildStores(cfg *config, logger *slog.Logger) (storeSetup, error) {
	var out storeSetup
	on, err := enabledStores(cfg)
	if err != nil {
		return out, err
	}
	if out.policy, err = entitlements.ParseClawbackPolicy(cfg.str("COINOP_CLAWBACK_POLICY")); err != nil {
		return out, fmt.Errorf("COINOP_CLAWBACK_POLICY: %w", err)
	}
	if out.consumption, err = cfg.boolean("COINOP_APPLE_CONSUMPTION_INFO"); err != nil {
		return out, err
	}
	for _, id := range strings.Split(cfg.str("COINOP_STORE_TESTERS"), ",") {
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		if err := entitlements.ValidatePlayerID(id); err != nil {
			return out, fmt.Errorf("COINOP_STORE_TESTERS: %q: %w", id, err)
		}
		out.testers = append(out.testers, id)
	}
	if on[storeApple] || on[storeFake] {
		if err := buildApple(cfg, on[storeFake], &out.stores, logger); err != nil {
			return out, err
		}
	}
	if on[storeGoogle] {
		if err := buildGoogle(cfg, &out.stores, &out.voided, logger); err != nil {
			return out, err
		}
	}
	if out.consumption && out.stores.AppleAPI == nil {
		return out, errors.New("COINOP_APPLE_CONSUMPTION_INFO needs the App Store Server API (COINOP_STORES with apple, COINOP_APPLE_API_KEY_ID, COINOP_APPLE_API_ISSUER_ID, COINOP_APPLE_API_PRIVATE_KEY)")
	}
	if len(on) == 0 {
		logger.Info("COINOP_STORES is empty: store purchases and notifications are disabled")
	}
	return out, nil
}

func buildApple(cfg *config, fake bool, st *server.Stores, logger *slog.Logger) error {
	env := receipts.Environment(cfg.str("COINOP_APPLE_ENVIRONMENT"))
	switch env {
	case receipts.EnvProduction, receipts.EnvSandbox, receipts.EnvXcode:
	default:
		return fmt.Errorf("COINOP_APPLE_ENVIRONMENT: %q is not production, sandbox or xcode", env)
	}
	ac := receipts.AppleConfig{BundleID: cfg.str("COINOP_APPLE_BUNDLE_ID"), Environment: env}
	if ac.BundleID == "" {
		return errors.New("COINOP_APPLE_BUNDLE_ID is required when COINOP_STORES includes apple or fake")
	}
	if s := cfg.str("COINOP_APPLE_APP_APPLE_ID"); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("COINOP_APPLE_APP_APPLE_ID: %q is not a positive integer", s)
		}
		ac.AppAppleID = id
	} else if env == receipts.EnvProduction {
		return errors.New("COINOP_APPLE_APP_APPLE_ID is required when COINOP_APPLE_ENVIRONMENT is production")
	}
	rootFiles := cfg.str("COINOP_APPLE_ROOT_CERTS")
	switch {
	case fake:
		if env == receipts.EnvProduction {
			return errors.New("COINOP_STORES=fake trusts a local test CA and is refused in production: set COINOP_APPLE_ENVIRONMENT=sandbox")
		}
		if rootFiles != "" {
			return errors.New("COINOP_APPLE_ROOT_CERTS and COINOP_STORES=fake both choose the trusted roots; set one")
		}
		dir := cfg.str("COINOP_FAKE_STORE_DIR")
		ca, err := fakestore.LoadOrCreateCA(dir)
		if err != nil {
			return fmt.Errorf("COINOP_FAKE_STORE_DIR: %w", err)
		}
		ac.Roots = ca.Roots()
		logger.Warn("COINOP_STORES=fake: App Store data is verified against a local test CA, not Apple's; never use this with real purchases",
			slog.String("dir", dir))
	case rootFiles != "":
		pool, err := loadRoots(rootFiles)
		if err != nil {
			return fmt.Errorf("COINOP_APPLE_ROOT_CERTS: %w", err)
		}
		ac.Roots = pool
	}
	v, err := receipts.NewAppleVerifier(ac)
	if err != nil {
		return err
	}
	st.Apple = v
	if err := buildAppleAPI(cfg, fake, v, st, logger); err != nil {
		return err
	}
	// Apple's verifyReceipt knows nothing of a local CA, and Xcode receipts
	// are never sent to it.
	if !fake && env != receipts.EnvXcode {
		st.AppleLegacy, err = receipts.NewAppleLegacy(receipts.AppleLegacyConfig{
			BundleID: ac.BundleID, Environment: env, SharedSecret: cfg.str("COINOP_APPLE_SHARED_SECRET"),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// buildAppleAPI builds the App Store Server API client that confirms signed
// transactions, when its three settings are set.
func buildAppleAPI(cfg *config, fake bool, v *receipts.AppleVerifier, st *server.Stores, logger *slog.Logger) error {
	keyID, issuer, keyFile := cfg.str("COINOP_APPLE_API_KEY_ID"), cfg.str("COINOP_APPLE_API_ISSUER_ID"), cfg.str("COINOP_APPLE_API_PRIVATE_KEY")
	switch n := countSet(keyID, issuer, keyFile); {
	case n == 0:
		return nil
	case n < 3:
		return errors.New("set all of COINOP_APPLE_API_KEY_ID, COINOP_APPLE_API_ISSUER_ID and COINOP_APPLE_API_PRIVATE_KEY, or none")
	}
	env := receipts.Environment(cfg.str("COINOP_APPLE_ENVIRONMENT"))
	baseURL := strings.TrimRight(cfg.str("COINOP_APPLE_API_URL"), "/")
	if baseURL != "" {
		u, err := url.Parse(baseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("COINOP_APPLE_API_URL: %q is not a base URL such as https://api.storekit.itunes.apple.com", baseURL)
		}
	}
	switch {
	case env == receipts.EnvXcode:
		return errors.New("COINOP_APPLE_API_*: Apple cannot confirm Xcode transactions; unset them")
	case fake && !loopbackURL(baseURL):
		// Apple knows nothing of fake-store transactions. Only a local fake
		// of the App Store Server API (a load test's, signing with the same
		// test CA) can confirm them; a loopback URL is the proof that one
		// is meant and no outside host is ever asked.
		return errors.New("COINOP_APPLE_API_*: Apple cannot confirm fake-store transactions; unset them, or point COINOP_APPLE_API_URL at a local fake (loopback)")
	case !fake && baseURL != "":
		logger.Warn("COINOP_APPLE_API_URL replaces Apple's App Store Server API host: transactions are confirmed by whatever answers there",
			slog.String("url", baseURL), slog.String("environment", string(env)))
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("COINOP_APPLE_API_PRIVATE_KEY: %w", err)
	}
	st.AppleAPI, err = receipts.NewAppleServerAPI(receipts.AppleServerAPIConfig{
		KeyID: keyID, IssuerID: issuer, KeyContent: key, BundleID: cfg.str("COINOP_APPLE_BUNDLE_ID"),
		Sandbox: env == receipts.EnvSandbox, BaseURL: baseURL,
	}, v)
	if err != nil {
		return fmt.Errorf("COINOP_APPLE_API_PRIVATE_KEY: %w", err)
	}
	logger.Info("StoreKit 2 transactions are confirmed with the App Store Server API", slog.String("environment", string(env)))
	return nil
}

// loopbackURL reports whether raw is a URL on this machine (localhost or
// a loopback address).
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func countSet(s ...string) int {
	n := 0
	for _, v := range s {
		if v != "" {
			n++
		}
	}
	return n
}

// loadRoots reads a comma-separated list of PEM or DER certificate files.
func loadRoots(files string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for _, f := range strings.Split(files, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if strings.Contains(string(b), "-----BEGIN") {
			if !pool.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("%s: no PEM certificate", f)
			}
		} else {
			c, err := x509.ParseCertificate(b)
			if err != nil {
				return nil, fmt.Errorf("%s: neither PEM nor a DER certificate: %w", f, err)
			}
			pool.AddCert(c)
		}
		n++
	}
	if n == 0 {
		return nil, errors.New("no certificate files listed")
	}
	return pool, nil
}

func buildGoogle(cfg *config, st *server.Stores, voided *receipts.VoidedPurchasesAPI, logger *slog.Logger) error {
	env := receipts.Environment(cfg.str("COINOP_GOOGLE_ENVIRONMENT"))
	if env != receipts.EnvProduction && env != receipts.EnvSandbox {
		return fmt.Errorf("COINOP_GOOGLE_ENVIRONMENT: %q is not production or sandbox", env)
	}
	pkg := cfg.str("COINOP_GOOGLE_PACKAGE_NAME")
	if pkg == "" {
		return errors.New("COINOP_GOOGLE_PACKAGE_NAME is required when COINOP_STORES includes google")
	}
	keyFile := cfg.str("COINOP_GOOGLE_SERVICE_ACCOUNT")
	if keyFile == "" {
		return errors.New("COINOP_GOOGLE_SERVICE_ACCOUNT (a service account JSON key file) is required when COINOP_STORES includes google")
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("COINOP_GOOGLE_SERVICE_ACCOUNT: %w", err)
	}
	playURL := strings.TrimRight(cfg.str("COINOP_GOOGLE_PLAY_API_URL"), "/")
	httpClient, err := receipts.PlayHTTPClient(playURL)
	if err != nil {
		return fmt.Errorf("COINOP_GOOGLE_PLAY_API_URL: %w", err)
	}
	if playURL != "" {
		logger.Warn("COINOP_GOOGLE_PLAY_API_URL replaces Google's Play Developer API host: purchases are verified by whatever answers there",
			slog.String("url", playURL), slog.String("environment", string(env)))
	}
	api, err := receipts.NewPlayAPI(key, httpClient)
	if err != nil {
		return fmt.Errorf("COINOP_GOOGLE_SERVICE_ACCOUNT: %w", err)
	}
	if st.Google, err = receipts.NewGooglePlay(receipts.GooglePlayConfig{PackageName: pkg, Environment: env}, api); err != nil {
		return err
	}
	// The sweep's client of the Voided Purchases API, at the same Play
	// Developer API host as the verification calls.
	if *voided, err = receipts.NewVoidedPurchasesAPI(receipts.VoidedPurchasesConfig{ServiceAccountJSON: key, BaseURL: playURL}); err != nil {
		return fmt.Errorf("COINOP_GOOGLE_SERVICE_ACCOUNT: %w", err)
	}
	aud, sa := cfg.str("COINOP_GOOGLE_PUSH_AUDIENCE"), cfg.str("COINOP_GOOGLE_PUSH_SERVICE_ACCOUNT")
	switch {
	case aud == "" && sa == "":
		logger.Warn("COINOP_GOOGLE_PUSH_AUDIENCE and COINOP_GOOGLE_PUSH_SERVICE_ACCOUNT are empty: Google Play notifications (refunds) are refused")
	case aud == "" || sa == "":
		return errors.New("set both COINOP_GOOGLE_PUSH_AUDIENCE and COINOP_GOOGLE_PUSH_SERVICE_ACCOUNT, or neither")
	default:
		if st.GooglePush, err = receipts.NewPushAuthenticator(receipts.PushAuthConfig{Audience: aud, ServiceAccountEmail: sa}); err != nil {
			return err
		}
	}
	return nil
}
