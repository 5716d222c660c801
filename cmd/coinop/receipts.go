package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/receipts/fakestore"
	"github.com/coinop/coinop/server"
)

const receiptsUsage = `Usage:
  coinop receipts mint --product ID [--player ID] [--transaction-id ID] [flags]
      print a StoreKit 2 signed transaction from the fake store, for POST /v1/receipts
  coinop receipts notification --type TYPE --transaction-id ID [flags]
      print an App Store Server Notification body from the fake store,
      for POST /v1/stores/apple/notifications (for example --type REFUND)

Both sign with the fake store's CA in --dir (default $COINOP_FAKE_STORE_DIR,
then .dev/fakestore), created on first use. Only a server started with
COINOP_STORES=fake and the same directory accepts what they print.
`

func runReceipts(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, receiptsUsage)
		return exitError{2}
	}
	switch args[0] {
	case "mint":
		return runReceiptsMint(args[1:], getenv, stdout, stderr)
	case "notification":
		return runReceiptsNotification(args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, receiptsUsage)
		return nil
	}
	fmt.Fprintf(stderr, "coinop receipts: unknown command %q\n\n%s", args[0], receiptsUsage)
	return exitError{2}
}

// fakeFlags are the flags both subcommands share.
type fakeFlags struct {
	dir, bundleID, environment string
}

func bindFakeFlags(fs *flag.FlagSet, getenv func(string) string) *fakeFlags {
	f := &fakeFlags{}
	fs.StringVar(&f.dir, "dir", envOr(getenv, "COINOP_FAKE_STORE_DIR", ".dev/fakestore"), "fake store directory (env COINOP_FAKE_STORE_DIR)")
	fs.StringVar(&f.bundleID, "bundle-id", getenv("COINOP_APPLE_BUNDLE_ID"), "bundle id (env COINOP_APPLE_BUNDLE_ID)")
	fs.StringVar(&f.environment, "environment", envOr(getenv, "COINOP_APPLE_ENVIRONMENT", "sandbox"), "production, sandbox or xcode (env COINOP_APPLE_ENVIRONMENT)")
	return f
}

// appleEnvironment spells a COINOP_APPLE_ENVIRONMENT value as Apple does.
func appleEnvironment(env string) (string, error) {
	switch env {
	case "production":
		return "Production", nil
	case "sandbox":
		return "Sandbox", nil
	case "xcode":
		return "Xcode", nil
	}
	return "", fmt.Errorf("--environment %q: want production, sandbox or xcode", env)
}

func (f *fakeFlags) load() (*fakestore.CA, string, error) {
	if f.bundleID == "" {
		return nil, "", errors.New("--bundle-id (or COINOP_APPLE_BUNDLE_ID) is required: the server checks it")
	}
	env, err := appleEnvironment(f.environment)
	if err != nil {
		return nil, "", err
	}
	ca, err := fakestore.LoadOrCreateCA(f.dir)
	if err != nil {
		return nil, "", err
	}
	return ca, env, nil
}

// productTypes maps --type to StoreKit's product types.
var productTypes = map[string]string{
	"consumable":     "Consumable",
	"non-consumable": "Non-Consumable",
	"auto-renewable": "Auto-Renewable Subscription",
	"non-renewing":   "Non-Renewing Subscription",
}

func runReceiptsMint(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("receipts mint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ff := bindFakeFlags(fs, getenv)
	product := fs.String("product", "", "store product id (a catalog store_products entry for apple)")
	player := fs.String("player", "", "player id: the transaction's appAccountToken becomes its AppAccountToken; empty: none")
	txID := fs.String("transaction-id", "", "transaction id (default: random)")
	original := fs.String("original-transaction-id", "", "original transaction id (default: the transaction id)")
	quantity := fs.Int("quantity", 1, "quantity")
	typ := fs.String("type", "consumable", "consumable, non-consumable, auto-renewable or non-renewing")
	expires := fs.Duration("expires", 0, "for subscriptions: expiry after the purchase (for example 720h)")
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	if *product == "" {
		return errors.New("receipts mint: --product is required")
	}
	if *quantity < 1 || *quantity > 1_000_000 {
		return errors.New("receipts mint: --quantity must be from 1 to 1000000")
	}
	storeType, ok := productTypes[*typ]
	if !ok {
		return fmt.Errorf("receipts mint: --type %q: want consumable, non-consumable, auto-renewable or non-renewing", *typ)
	}
	ca, env, err := ff.load()
	if err != nil {
		return fmt.Errorf("receipts mint: %w", err)
	}
	now := time.Now()
	c := fakestore.TransactionClaims{
		BundleID: ff.bundleID, ProductID: *product, TransactionID: *txID, OriginalTransactionID: *original,
		Environment: env, Type: storeType, Quantity: int32(*quantity), PurchaseDate: now, SignedDate: now,
	}
	if *player != "" {
		c.AppAccountToken = server.AppAccountToken(*player)
	}
	if *expires > 0 {
		c.ExpiresDate = now.Add(*expires)
	}
	jws, err := ca.MintTransaction(c)
	if err != nil {
		return fmt.Errorf("receipts mint: %w", err)
	}
	fmt.Fprintln(stdout, jws)
	return nil
}

func runReceiptsNotification(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("receipts notification", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ff := bindFakeFlags(fs, getenv)
	typ := fs.String("type", "", "notification type: REFUND, REVOKE, DID_RENEW, SUBSCRIBED, TEST, ...")
	subtype := fs.String("subtype", "", "notification subtype")
	txID := fs.String("transaction-id", "", "transaction the notification is about (not for TEST)")
	original := fs.String("original-transaction-id", "", "original transaction id (default: the transaction id)")
	product := fs.String("product", "unknown", "product id of the transaction (a refund needs only the transaction id)")
	id := fs.String("id", "", "notificationUUID (default: random); repeat one to test deduplication")
	appID := fs.Int64("app-apple-id", 0, "appAppleId (env COINOP_APPLE_APP_APPLE_ID; required for production)")
	expires := fs.Duration("expires", 0, "for DID_RENEW and SUBSCRIBED: expiry after now")
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	if *typ == "" {
		return errors.New("receipts notification: --type is required")
	}
	*typ = strings.ToUpper(*typ)
	if *txID == "" && *typ != "TEST" {
		return errors.New("receipts notification: --transaction-id is required")
	}
	if *appID == 0 {
		if v, err := strconv.ParseInt(getenv("COINOP_APPLE_APP_APPLE_ID"), 10, 64); err == nil {
			*appID = v
		}
	}
	ca, env, err := ff.load()
	if err != nil {
		return fmt.Errorf("receipts notification: %w", err)
	}
	now := time.Now()
	nc := fakestore.NotificationClaims{Type: *typ, Subtype: *subtype, NotificationUUID: *id, BundleID: ff.bundleID,
		AppAppleID: *appID, Environment: env, SignedDate: now}
	if *txID != "" {
		tc := &fakestore.TransactionClaims{ProductID: *product, TransactionID: *txID, OriginalTransactionID: *original,
			PurchaseDate: now, SignedDate: now}
		if *typ == "REFUND" || *typ == "REVOKE" {
			tc.RevocationDate = now
		}
		if *expires > 0 {
			tc.Type = productTypes["auto-renewable"]
			tc.ExpiresDate = now.Add(*expires)
		}
		nc.Transaction = tc
	}
	body, err := ca.MintNotification(nc)
	if err != nil {
		return fmt.Errorf("receipts notification: %w", err)
	}
	fmt.Fprintln(stdout, string(body))
	return nil
}

// Store settings `coinop dev` fills in when they are unset: the fake store,
// so purchases can be tried with no Apple account.
const (
	devStores           = storeFake
	devBundleID         = "com.example.coinop"
	devAppleEnvironment = "sandbox"
)

// printStoreBanner shows, when the fake store is on and the catalog sells an
// App Store product, how to mint a test purchase and redeem it.
func printStoreBanner(w io.Writer, addr, token string, cfg *config, snap *catalog.Snapshot) {
	on, err := enabledStores(cfg)
	if err != nil || !on[storeFake] || snap == nil {
		return
	}
	product := ""
	for _, sp := range snap.Catalog.StoreProducts {
		if sp.Store == catalog.StoreApple {
			product = sp.ProductID
			break
		}
	}
	if product == "" {
		return
	}
	base := "http://" + addr
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "::" || host == "" || host == "0.0.0.0") {
		base = "http://127.0.0.1:" + port
	}
	fmt.Fprintf(w, `Redeem a test App Store purchase (fake store in %[4]s):
  JWS=$(go run ./cmd/coinop receipts mint --product %[3]s --player %[5]s --bundle-id %[6]s --environment %[7]s --dir %[4]s)
  curl -s -X POST %[1]s/v1/receipts \
    -H 'Authorization: Bearer %[2]s' \
    -H 'Content-Type: application/json' \
    -d "{\"store\": \"apple\", \"signed_transaction\": \"$JWS\"}"

`, base, token, product, cfg.str("COINOP_FAKE_STORE_DIR"), devPlayer, cfg.str("COINOP_APPLE_BUNDLE_ID"), cfg.str("COINOP_APPLE_ENVIRONMENT"))
}
