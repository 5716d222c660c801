package fakestore

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"time"

	"github.com/awa/go-iap/appstore/api"
	"github.com/google/uuid"
)

// SignOptions change the JWS header, for rejection tests.
type SignOptions struct {
	// X5C replaces the chain in the header (DER certificates); nil means
	// Chain().
	X5C [][]byte
	// OmitX5C leaves x5c out of the header.
	OmitX5C bool
	// Alg replaces "ES256" in the header; the signature is ES256 anyway.
	Alg string
}

// Sign signs payload as a compact JWS with the leaf key (ES256, raw r||s),
// with the chain in the x5c header as Apple does.
func (ca *CA) Sign(payload []byte, o SignOptions) (string, error) {
	h := map[string]any{"alg": "ES256", "typ": "JWT"}
	if o.Alg != "" {
		h["alg"] = o.Alg
	}
	if !o.OmitX5C {
		chain := o.X5C
		if chain == nil {
			chain = ca.Chain()
		}
		x5c := make([]string, len(chain))
		for i, der := range chain {
			x5c[i] = base64.StdEncoding.EncodeToString(der)
		}
		h["x5c"] = x5c
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, ca.leafKey, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// TransactionClaims describe a StoreKit 2 transaction. Zero fields get
// defaults: a random TransactionID, OriginalTransactionID = TransactionID,
// Environment "Sandbox", Type "Consumable", Quantity 1, PurchaseDate and
// SignedDate now, OwnershipType "PURCHASED".
type TransactionClaims struct {
	BundleID              string
	ProductID             string
	TransactionID         string
	OriginalTransactionID string
	Environment           string // "Production", "Sandbox", "Xcode"
	Type                  string // "Consumable", "Non-Consumable", "Auto-Renewable Subscription", "Non-Renewing Subscription"
	Quantity              int32
	PurchaseDate          time.Time
	ExpiresDate           time.Time
	RevocationDate        time.Time
	RevocationReason      *int32
	// RevocationType (REFUND_FULL, REFUND_PRORATED, FAMILY_REVOKE) and
	// RevocationPercentage (milli-percent: 50000 is 50%) of a refund.
	RevocationType       string
	RevocationPercentage int32
	AppAccountToken      string
	OwnershipType        string
	SignedDate           time.Time
	// Price (milliunits of Currency, ISO 4217) of the purchase; none when 0.
	Price    int64
	Currency string
}

// NewTransactionID returns a random numeric id shaped like Apple's.
func NewTransactionID() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1e15))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return fmt.Sprintf("2%015d", n)
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func (c TransactionClaims) payload() api.JWSTransaction {
	now := time.Now()
	if c.TransactionID == "" {
		c.TransactionID = NewTransactionID()
	}
	if c.OriginalTransactionID == "" {
		c.OriginalTransactionID = c.TransactionID
	}
	if c.Environment == "" {
		c.Environment = "Sandbox"
	}
	if c.Type == "" {
		c.Type = string(api.Consumable)
	}
	if c.Quantity == 0 {
		c.Quantity = 1
	}
	if c.PurchaseDate.IsZero() {
		c.PurchaseDate = now
	}
	if c.SignedDate.IsZero() {
		c.SignedDate = now
	}
	if c.OwnershipType == "" {
		c.OwnershipType = "PURCHASED"
	}
	return api.JWSTransaction{
		TransactionID:         c.TransactionID,
		OriginalTransactionId: c.OriginalTransactionID,
		BundleID:              c.BundleID,
		ProductID:             c.ProductID,
		PurchaseDate:          ms(c.PurchaseDate),
		OriginalPurchaseDate:  ms(c.PurchaseDate),
		ExpiresDate:           ms(c.ExpiresDate),
		Quantity:              c.Quantity,
		Type:                  api.IAPType(c.Type),
		AppAccountToken:       c.AppAccountToken,
		InAppOwnershipType:    c.OwnershipType,
		SignedDate:            ms(c.SignedDate),
		RevocationDate:        ms(c.RevocationDate),
		RevocationReason:      c.RevocationReason,
		RevocationType:        api.RevocationType(c.RevocationType),
		RevocationPercentage:  c.RevocationPercentage,
		TransactionReason:     api.TransactionReasonPurchase,
		Environment:           api.Environment(c.Environment),
		Price:                 c.Price,
		Currency:              c.Currency,
		Storefront:            "USA",
		StorefrontId:          "143441",
	}
}

// MintTransaction returns a signed transaction (JWSTransaction).
func (ca *CA) MintTransaction(c TransactionClaims) (string, error) {
	b, err := json.Marshal(c.payload())
	if err != nil {
		return "", err
	}
	return ca.Sign(b, SignOptions{})
}

// RenewalClaims describe subscription renewal info. Zero fields get
// defaults: Environment "Sandbox", SignedDate now.
type RenewalClaims struct {
	OriginalTransactionID string
	ProductID             string
	AutoRenewProductID    string
	AutoRenew             bool
	Environment           string
	RenewalDate           time.Time
	SignedDate            time.Time
}

func (c RenewalClaims) payload() map[string]any {
	if c.Environment == "" {
		c.Environment = "Sandbox"
	}
	if c.SignedDate.IsZero() {
		c.SignedDate = time.Now()
	}
	if c.AutoRenewProductID == "" {
		c.AutoRenewProductID = c.ProductID
	}
	status := 0
	if c.AutoRenew {
		status = 1
	}
	p := map[string]any{
		"originalTransactionId": c.OriginalTransactionID,
		"productId":             c.ProductID,
		"autoRenewProductId":    c.AutoRenewProductID,
		"autoRenewStatus":       status,
		"environment":           c.Environment,
		"signedDate":            ms(c.SignedDate),
	}
	if !c.RenewalDate.IsZero() {
		p["renewalDate"] = ms(c.RenewalDate)
	}
	return p
}

// MintRenewalInfo returns signed renewal info (JWSRenewalInfo).
func (ca *CA) MintRenewalInfo(c RenewalClaims) (string, error) {
	b, err := json.Marshal(c.payload())
	if err != nil {
		return "", err
	}
	return ca.Sign(b, SignOptions{})
}

// NotificationClaims describe an App Store Server Notification v2. Zero
// fields get defaults: NotificationUUID random, Environment "Sandbox",
// SignedDate now. Transaction and Renewal, when set, are signed and
// embedded; their Environment defaults to the notification's.
type NotificationClaims struct {
	Type             string // e.g. ONE_TIME_CHARGE, DID_RENEW, REFUND, TEST
	Subtype          string
	NotificationUUID string
	BundleID         string
	AppAppleID       int64
	Environment      string
	// Status is the subscription status (1 active, 2 expired, 3 billing
	// retry, 4 grace period, 5 revoked); 0 leaves it out.
	Status      int32
	Transaction *TransactionClaims
	Renewal     *RenewalClaims
	SignedDate  time.Time
}

// MintNotification returns a notification request body,
// {"signedPayload": "<JWS>"}, as the App Store would POST it.
func (ca *CA) MintNotification(c NotificationClaims) ([]byte, error) {
	jws, err := ca.MintNotificationJWS(c)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{"signedPayload": jws})
}

// MintNotificationJWS returns the signedPayload of a notification.
func (ca *CA) MintNotificationJWS(c NotificationClaims) (string, error) {
	if c.NotificationUUID == "" {
		c.NotificationUUID = uuid.NewString()
	}
	if c.Environment == "" {
		c.Environment = "Sandbox"
	}
	if c.SignedDate.IsZero() {
		c.SignedDate = time.Now()
	}
	data := map[string]any{
		"bundleId":    c.BundleID,
		"environment": c.Environment,
	}
	if c.AppAppleID != 0 {
		data["appAppleId"] = c.AppAppleID
	}
	if c.Status != 0 {
		data["status"] = c.Status
	}
	if t := c.Transaction; t != nil {
		tc := *t
		if tc.Environment == "" {
			tc.Environment = c.Environment
		}
		if tc.BundleID == "" {
			tc.BundleID = c.BundleID
		}
		s, err := ca.MintTransaction(tc)
		if err != nil {
			return "", err
		}
		data["signedTransactionInfo"] = s
	}
	if r := c.Renewal; r != nil {
		rc := *r
		if rc.Environment == "" {
			rc.Environment = c.Environment
		}
		s, err := ca.MintRenewalInfo(rc)
		if err != nil {
			return "", err
		}
		data["signedRenewalInfo"] = s
	}
	p := map[string]any{
		"notificationType": c.Type,
		"notificationUUID": c.NotificationUUID,
		"version":          "2.0",
		"signedDate":       ms(c.SignedDate),
		"data":             data,
	}
	if c.Subtype != "" {
		p["subtype"] = c.Subtype
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	return ca.Sign(b, SignOptions{})
}
