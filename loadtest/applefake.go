package loadtest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
)

// AppleSigner mints fake-store App Store data (StoreKit 2 signed
// transactions and App Store Server Notifications v2) on the fly.
//
// Why it signs itself: the server in fake mode (COINOP_STORES=fake) trusts
// the local CA that `coinop dev`, `coinop serve` and `coinop receipts mint`
// share through COINOP_FAKE_STORE_DIR (root.pem, intermediate.pem, leaf.pem
// and leaf-key.pem). The server offers no minting route, and should not: a
// route that signs store receipts on request is one misconfiguration away
// from free purchases. This package must not import receipts/fakestore
// (it tests the server from the outside, imports_test.go), so it reads the
// same files, given by --fake-store-dir, and signs with the leaf key as the
// fake store does: ES256 (raw r||s), the chain in the x5c header. If the
// files and the server's CA differ, the first redemption says so
// (invalid_receipt) and setup stops.
type AppleSigner struct {
	key *ecdsa.PrivateKey
	x5c []string
	// BundleID and Environment go into everything minted.
	BundleID    string
	Environment string // Sandbox, Production or Xcode
}

// LoadAppleSigner reads the fake CA in dir. It returns an error naming the
// file that is missing or wrong.
func LoadAppleSigner(dir, bundleID, environment string) (*AppleSigner, error) {
	read := func(name, typ string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != typ {
			return nil, fmt.Errorf("%s: not a PEM %s", filepath.Join(dir, name), typ)
		}
		return blk.Bytes, nil
	}
	s := &AppleSigner{BundleID: bundleID, Environment: environment}
	var leaf *x509.Certificate
	for _, name := range []string{"leaf.pem", "intermediate.pem", "root.pem"} {
		der, err := read(name, "CERTIFICATE")
		if err != nil {
			return nil, err
		}
		if name == "leaf.pem" {
			if leaf, err = x509.ParseCertificate(der); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		s.x5c = append(s.x5c, base64.StdEncoding.EncodeToString(der))
	}
	der, err := read("leaf-key.pem", "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("leaf-key.pem: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, errors.New("leaf-key.pem: not the key of leaf.pem")
	}
	s.key = key
	if bundleID == "" {
		return nil, errors.New("minting fake-store receipts needs the app's bundle id (--apple-bundle-id or COINOP_APPLE_BUNDLE_ID)")
	}
	switch environment {
	case "Sandbox", "Production", "Xcode":
	default:
		return nil, fmt.Errorf("apple environment %q: want Sandbox, Production or Xcode", environment)
	}
	return s, nil
}

func (s *AppleSigner) sign(payload any) (string, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return "", err
	}
	h, _ := json.Marshal(map[string]any{"alg": "ES256", "typ": "JWT", "x5c": s.x5c})
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	sum := sha256.Sum256([]byte(input))
	r, ss, err := ecdsa.Sign(rand.Reader, s.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// StoreTx is one fake App Store transaction.
type StoreTx struct {
	TransactionID string    `json:"transaction_id"`
	ProductID     string    `json:"product_id"`
	PlayerID      string    `json:"player_id"`
	PurchasedAt   time.Time `json:"purchased_at"`
}

// NewStoreTransactionID returns a fresh numeric id shaped like Apple's.
// It comes from the system's randomness even with --seed: store
// transactions persist on the server, so a replay needs new ones.
func NewStoreTransactionID() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1e15))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return fmt.Sprintf("3%015d", n)
}

// AppAccountToken is the UUID a game attaches to a store purchase for a
// player: UUIDv5 in the URL namespace of "urn:coinop:player:<id>", as the
// server documents.
func AppAccountToken(playerID string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:coinop:player:"+playerID)).String()
}

func (s *AppleSigner) transaction(tx StoreTx, revokedAt time.Time) map[string]any {
	ms := tx.PurchasedAt.UnixMilli()
	p := map[string]any{
		"transactionId": tx.TransactionID, "originalTransactionId": tx.TransactionID,
		"bundleId": s.BundleID, "productId": tx.ProductID,
		"purchaseDate": ms, "originalPurchaseDate": ms, "quantity": 1, "type": "Consumable",
		"appAccountToken": AppAccountToken(tx.PlayerID), "inAppOwnershipType": "PURCHASED",
		"signedDate": time.Now().UnixMilli(), "transactionReason": "PURCHASE", "environment": s.Environment,
		"storefront": "USA", "storefrontId": "143441",
	}
	if !revokedAt.IsZero() {
		p["revocationDate"] = revokedAt.UnixMilli()
		p["revocationReason"] = 0
	}
	return p
}

// MintTransaction returns tx as a StoreKit 2 signed transaction.
func (s *AppleSigner) MintTransaction(tx StoreTx) (string, error) {
	return s.sign(s.transaction(tx, time.Time{}))
}

// MintRefund returns the App Store's REFUND notification for tx, as the
// request body it POSTs ({"signedPayload": ...}), and its notification id.
func (s *AppleSigner) MintRefund(tx StoreTx, now time.Time) (body []byte, id string, err error) {
	signedTx, err := s.sign(s.transaction(tx, now))
	if err != nil {
		return nil, "", err
	}
	id = uuid.NewString()
	payload, err := s.sign(map[string]any{
		"notificationType": "REFUND", "notificationUUID": id, "version": "2.0", "signedDate": now.UnixMilli(),
		"data": map[string]any{"bundleId": s.BundleID, "environment": s.Environment, "signedTransactionInfo": signedTx},
	})
	if err != nil {
		return nil, "", err
	}
	body, err = json.Marshal(map[string]string{"signedPayload": payload})
	return body, id, err
}
