package receipts

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/awa/go-iap/appstore/api"
)

// AppleServerAPIConfig configures an AppleServerAPI.
type AppleServerAPIConfig struct {
	// KeyID, IssuerID and KeyContent are an App Store Server API key from
	// App Store Connect: its id, the team's issuer id and the .p8 file
	// (a PKCS#8 EC private key, PEM).
	KeyID      string
	IssuerID   string
	KeyContent []byte
	// BundleID of the app, sent in the request token.
	BundleID string
	// Sandbox calls Apple's sandbox host instead of production.
	Sandbox bool
	// BaseURL overrides the host (scheme and authority, no trailing slash):
	// a local fake of the App Store Server API in tests and load tests
	// (COINOP_APPLE_API_URL); empty means Apple's host for Sandbox.
	BaseURL string
	// HTTPClient makes the calls; nil means a client with a 10s timeout.
	HTTPClient *http.Client
}

// maxServerAPIBody bounds an App Store Server API answer.
const maxServerAPIBody = 1 << 20

// AppleServerAPI confirms StoreKit 2 transactions with Apple's App Store
// Server API (Get Transaction Info), so a purchase refunded or revoked since
// it was signed on the device is seen. The signed transaction Apple answers
// with is verified by the AppleVerifier like one from a device. It is safe
// for concurrent use.
type AppleServerAPI struct {
	client   *api.StoreClient
	host     string
	env      Environment
	verifier *AppleVerifier
}

// Environment is the App Store environment this client asks: EnvSandbox or
// EnvProduction. Apple knows a transaction only in its own environment.
func (a *AppleServerAPI) Environment() Environment { return a.env }

// NewAppleServerAPI checks cfg (the key must parse) and returns a client
// verifying Apple's answers with v. Nothing is contacted yet.
func NewAppleServerAPI(cfg AppleServerAPIConfig, v *AppleVerifier) (*AppleServerAPI, error) {
	switch {
	case v == nil:
		return nil, errors.New("receipts: apple server api: a verifier is required")
	case cfg.KeyID == "" || cfg.IssuerID == "" || cfg.BundleID == "":
		return nil, errors.New("receipts: apple server api: KeyID, IssuerID and BundleID are required")
	}
	if err := checkP8(cfg.KeyContent); err != nil {
		return nil, fmt.Errorf("receipts: apple server api: %w", err)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	// Bound the answers go-iap reads whole.
	limited := *hc
	limited.Transport = limitBody{base: hc.Transport}
	host := strings.TrimRight(cfg.BaseURL, "/")
	switch {
	case host != "":
	case cfg.Sandbox:
		host = api.HostSandBox
	default:
		host = api.HostProduction
	}
	c := api.NewStoreClientWithHTTPClient(&api.StoreConfig{
		KeyContent: cfg.KeyContent,
		KeyID:      cfg.KeyID,
		BundleID:   cfg.BundleID,
		Issuer:     cfg.IssuerID,
		Sandbox:    cfg.Sandbox,
		HostDebug:  host,
	}, &limited)
	env := EnvProduction
	if cfg.Sandbox {
		env = EnvSandbox
	}
	return &AppleServerAPI{client: c, host: host, env: env, verifier: v}, nil
}

// checkP8 accepts what go-iap's token signer accepts: a PEM PKCS#8 ECDSA key.
func checkP8(b []byte) error {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return errors.New("KeyContent is not a PEM .p8 key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return fmt.Errorf("KeyContent: %w", err)
	}
	if _, ok := k.(*ecdsa.PrivateKey); !ok {
		return errors.New("KeyContent is not an EC private key")
	}
	return nil
}

type limitBody struct{ base http.RoundTripper }

func (l limitBody) RoundTrip(r *http.Request) (*http.Response, error) {
	base := l.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, maxServerAPIBody), resp.Body}
	return resp, nil
}

// Confirm asks Apple for transactionID (Get Transaction Info) and returns
// Apple's current signed transaction, verified with the AppleVerifier and
// opt, as a Purchase: RevokedAt is set when Apple refunded or revoked it.
// Errors: *InvalidError with ReasonState when Apple does not know the
// transaction, ReasonFormat for an undecodable answer or one about another
// transaction, and the verifier's reasons; ErrMisconfigured for 401/403
// (our key); ErrStoreUnavailable for timeouts, network errors, 429, 5xx and
// Apple's "try again" errors.
func (a *AppleServerAPI) Confirm(ctx context.Context, transactionID string, opt VerifyOptions) (*Purchase, error) {
	if !numericID(transactionID) {
		return nil, invalid(ReasonFormat, "transaction id %q is not numeric", transactionID)
	}
	// GetTransactionInfo drops the status code of unsuccessful answers, so
	// call the same endpoint through Do.
	url := a.host + strings.Replace(api.PathTransactionInfo, "{transactionId}", transactionID, 1)
	status, body, err := a.client.Do(ctx, http.MethodGet, url, nil)
	if status == 0 && err != nil {
		if errors.Is(err, api.ErrAuthKeyInvalidPem) || errors.Is(err, api.ErrAuthKeyInvalidType) {
			return nil, fmt.Errorf("%w: app store server api key: %v", ErrMisconfigured, err)
		}
		return nil, unavailable("app store server api: %v", err)
	}
	var apiErr *api.Error
	switch {
	case status == http.StatusOK:
		if err != nil {
			return nil, unavailable("app store server api: %v", err)
		}
	case errors.As(err, &apiErr) && apiErr.Retryable():
		return nil, unavailable("app store server api: HTTP %d: %v", status, apiErr)
	case status == http.StatusNotFound:
		return nil, invalid(ReasonState, "the App Store does not know transaction %s", transactionID)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, fmt.Errorf("%w: app store server api: HTTP %d", ErrMisconfigured, status)
	case status == http.StatusBadRequest:
		return nil, invalid(ReasonFormat, "the App Store refused transaction id %s: %v", transactionID, err)
	default: // 429, 5xx, anything unexpected
		return nil, unavailable("app store server api: HTTP %d", status)
	}
	var info api.TransactionInfoResponse
	if err := json.Unmarshal(body, &info); err != nil || info.SignedTransactionInfo == "" {
		return nil, invalid(ReasonFormat, "app store server api answer has no signedTransactionInfo")
	}
	p, err := a.verifier.VerifyTransaction(info.SignedTransactionInfo, opt)
	if err != nil {
		return nil, fmt.Errorf("app store server api: %w", err)
	}
	if p.TransactionID != transactionID {
		return nil, invalid(ReasonFormat, "app store server api answered for transaction %s, asked %s", p.TransactionID, transactionID)
	}
	return p, nil
}

func numericID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// AppleConsumption is the consumption information answered to a
// CONSUMPTION_REQUEST (Apple's ConsumptionRequestV1; go-iap's type). Codes
// are Apple's: 0 is "undeclared" in every enumerated field.
type AppleConsumption = api.ConsumptionRequestBody

// SendConsumption sends consumption information about transactionID (Send
// Consumption Information V1, PUT /inApps/v1/transactions/consumption/{id}).
// Apple accepts it within 12 hours of the CONSUMPTION_REQUEST and answers
// 202. Errors: *InvalidError with ReasonFormat for a request Apple refuses
// as malformed (400: retrying will not help) and ReasonState when Apple
// does not know the transaction (404); ErrMisconfigured for 401/403;
// ErrStoreUnavailable for timeouts, network errors, 429 and 5xx.
func (a *AppleServerAPI) SendConsumption(ctx context.Context, transactionID string, info AppleConsumption) error {
	if !numericID(transactionID) {
		return invalid(ReasonFormat, "transaction id %q is not numeric", transactionID)
	}
	body, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("receipts: consumption information: %w", err)
	}
	url := a.host + "/inApps/v1/transactions/consumption/" + transactionID
	status, _, err := a.client.Do(ctx, http.MethodPut, url, bytes.NewReader(body))
	if status == 0 && err != nil {
		if errors.Is(err, api.ErrAuthKeyInvalidPem) || errors.Is(err, api.ErrAuthKeyInvalidType) {
			return fmt.Errorf("%w: app store server api key: %v", ErrMisconfigured, err)
		}
		return unavailable("app store server api: %v", err)
	}
	var apiErr *api.Error
	switch {
	case status == http.StatusAccepted || status == http.StatusOK:
		return nil
	case errors.As(err, &apiErr) && apiErr.Retryable():
		return unavailable("app store server api: HTTP %d: %v", status, apiErr)
	case status == http.StatusNotFound:
		return invalid(ReasonState, "the App Store does not know transaction %s", transactionID)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("%w: app store server api: HTTP %d", ErrMisconfigured, status)
	case status == http.StatusBadRequest:
		return invalid(ReasonFormat, "the App Store refused the consumption information for %s: %v", transactionID, err)
	}
	return unavailable("app store server api: HTTP %d", status) // 429, 5xx, anything unexpected
}
